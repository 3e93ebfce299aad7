#include "layer/grpc.hpp"

#include "core/ascii.hpp"
#include "layer/grpc_web.hpp"
#include "layer/http1_wire.hpp"

namespace sluice::layer {

bool is_grpc(std::string_view content_type) {
  constexpr std::string_view kGrpc = "application/grpc";
  return content_type.size() >= kGrpc.size() && core::iequals(content_type.substr(0, kGrpc.size()), kGrpc) &&
         grpc_web_form(content_type) == GrpcWebForm::none;
}

bool is_grpc_transport_field(std::string_view field) {
  std::string name = core::to_lower(field);
  return name.starts_with(':') || name == "content-type" || name == "content-length" || name == "te" ||
         name == "host" || name == "connection" || name == "transfer-encoding" || name == "grpc-timeout";
}

envelope::GrpcStartMessage grpc_start_message(std::string_view path, const envelope::Headers& headers) {
  if (size_t scheme = path.find("://"); scheme != std::string_view::npos) {
    size_t slash = path.find('/', scheme + 3);
    path = slash == std::string_view::npos ? std::string_view("/") : path.substr(slash);
  }
  envelope::GrpcStartMessage g;
  size_t slash = path.find('/', 1);
  g.service = std::string(path.substr(1, slash == std::string_view::npos ? std::string_view::npos : slash - 1));
  if (slash != std::string_view::npos) g.method = std::string(path.substr(slash + 1));
  for (const auto& h : headers) {
    std::string name = core::to_lower(h.name);
    if (name == "grpc-timeout") g.timeout = h.value;
    if (!is_grpc_transport_field(name)) g.metadata.push_back(h);
  }
  return g;
}

envelope::GrpcEndMessage grpc_end_message(const envelope::Headers& fields) {
  envelope::GrpcEndMessage g;
  std::string status = header_value(fields, "grpc-status");
  g.status = status.empty() ? -1 : std::atoi(status.c_str());
  g.message = header_value(fields, "grpc-message");
  g.trailers = fields;
  return g;
}

}  // namespace sluice::layer
