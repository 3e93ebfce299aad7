#pragma once
// Header fields as nghttp2 takes them (pointers into `headers`, which must outlive the call that
// submits them).
#include <nghttp2/nghttp2.h>

#include <vector>

#include "envelope/record.hpp"

namespace sluice::layer {

inline std::vector<nghttp2_nv> to_nv(const envelope::Headers& first, const envelope::Headers& then = {}) {
  std::vector<nghttp2_nv> nv;
  nv.reserve(first.size() + then.size());
  for (const auto* list : {&first, &then})
    for (const auto& h : *list)
      nv.push_back({reinterpret_cast<uint8_t*>(const_cast<char*>(h.name.data())),
                    reinterpret_cast<uint8_t*>(const_cast<char*>(h.value.data())), h.name.size(), h.value.size(),
                    NGHTTP2_NV_FLAG_NONE});
  return nv;
}

}  // namespace sluice::layer
