#include "filter/flow_filter.hpp"

#include <algorithm>

#include "filter/scan.hpp"

namespace sluice::filter {

namespace {

// The final response of an HTTP exchange: the flow's verdict can be given.
bool completes_flow(const envelope::Envelope& e) {
  if (e.protocol != envelope::Protocol::http || e.modified || !e.overlay.empty()) return false;
  const auto* m = std::get_if<envelope::HttpMessage>(&e.message);
  return m && m->kind == envelope::HttpMessage::Kind::response && m->status >= 200;
}

}  // namespace

FlowFilter::FlowFilter(Filter filter, Options options) : filter_(std::move(filter)), options_(options) {}
FlowFilter::~FlowFilter() = default;

template <class T>
T* FlowFilter::IdTable<T>::find(std::string_view id, size_t hash) {
  size_t mask = slots_.size() - 1;
  for (size_t i = hash & mask;; i = (i + 1) & mask) {
    const Slot& slot = slots_[i];
    if (slot.index == 0) return nullptr;
    if (slot.hash == hash && entries_[slot.index - 1].id == id) return &entries_[slot.index - 1];
  }
}

namespace {
size_t hash_id(std::string_view id) { return std::hash<std::string_view>{}(id); }
}  // namespace

template <class T>
T& FlowFilter::IdTable<T>::insert(std::string_view id, size_t hash) {
  if (2 * (size() + 1) > slots_.size()) {  // at most half full
    std::vector<Slot> bigger(slots_.size() * 2);
    size_t mask = bigger.size() - 1;
    for (const Slot& slot : slots_) {
      if (slot.index == 0) continue;
      size_t i = slot.hash & mask;
      while (bigger[i].index != 0) i = (i + 1) & mask;
      bigger[i] = slot;
    }
    slots_.swap(bigger);
  }
  size_t mask = slots_.size() - 1;
  size_t i = hash & mask;
  while (slots_[i].index != 0) i = (i + 1) & mask;
  uint32_t index;
  if (free_.empty()) {
    entries_.emplace_back();
    index = static_cast<uint32_t>(entries_.size() - 1);
  } else {
    index = free_.back();
    free_.pop_back();
  }
  T& entry = entries_[index];
  entry.id = id;
  slots_[i] = Slot{hash, index + 1};
  return entry;
}

template <class T>
void FlowFilter::IdTable<T>::erase(T& entry) {
  size_t mask = slots_.size() - 1;
  size_t i = hash_id(entry.id) & mask;
  while (&entries_[slots_[i].index - 1] != &entry) i = (i + 1) & mask;
  uint32_t index = slots_[i].index - 1;
  // Linear probing without tombstones: later entries of the run move back into the hole when the hole
  // lies between their home slot and where they are.
  for (size_t j = (i + 1) & mask; slots_[j].index != 0; j = (j + 1) & mask) {
    size_t home = slots_[j].hash & mask;
    bool stays = i <= j ? (i < home && home <= j) : (i < home || home <= j);
    if (!stays) {
      slots_[i] = slots_[j];
      i = j;
    }
  }
  slots_[i] = Slot{};
  entry = T{};
  free_.push_back(index);
}

FlowFilter::StreamState& FlowFilter::stream(const std::string& id) {
  if (last_stream_ && last_stream_->id == id) return *last_stream_;
  size_t h = hash_id(id);
  StreamState* s = streams_.find(id, h);
  if (!s) {
    s = &streams_.insert(id, h);
    if (id.find('.') != std::string::npos) by_name_.emplace(s->id, s);  // a sub-stream
  }
  last_stream_ = s;
  return *s;
}

FlowFilter::Flow& FlowFilter::flow(const std::string& id, const std::string& stream_id) {
  size_t h = hash_id(id);
  if (Flow* known = flows_.find(id, h)) return *known;
  Flow& f = flows_.insert(id, h);
  StreamState& s = stream(stream_id);
  f.stream = &s;
  ++s.alive;
  if (free_views_.empty()) {
    f.view = static_cast<uint32_t>(views_.size());
    views_.emplace_back();
  } else {
    f.view = free_views_.back();
    free_views_.pop_back();
  }
  if (!s.ended) join(f, s);  // (a record after its stream's end: its flow is forgotten once decided)
  order_.push_back(&f);
  ++f.refs;
  ++pending_;
  return f;
}

void FlowFilter::join(Flow& f, StreamState& s) {
  if (s.ended || (!s.open.empty() && s.open.back() == &f)) return;
  s.open.push_back(&f);
  if (f.stream != &s) ++f.refs;
  if (s.open.size() >= 2 * s.pruned) {  // drop the decided ones, now and then
    // Its own are forgotten at its end, but for the oldest past keep_decided: a long connection's.
    size_t own = std::count_if(s.open.begin(), s.open.end(),
                               [&](const Flow* o) { return o->stream == &s && o->state != State::pending; });
    size_t loosen = own > options_.keep_decided ? own - options_.keep_decided : 0;
    std::vector<Flow*> released, loosened;
    std::erase_if(s.open, [&](Flow* o) {
      if (o->state == State::pass) s.passed = true;
      if (o->state == State::pending) return false;
      if (o->stream == &s) {
        if (loosen == 0) return false;
        --loosen;
        loosened.push_back(o);
        return true;
      }
      released.push_back(o);
      return true;
    });
    s.pruned = std::max<size_t>(16, s.open.size());
    for (Flow* o : released) unref(*o);
    for (Flow* o : loosened) {
      o->loose = true;
      if (o->refs == 0) forget(*o);
    }
  }
}

void FlowFilter::end_stream(StreamState& s) {
  std::vector<StreamState*> ending{&s};
  std::string prefix = s.id + ".";
  for (auto it = by_name_.lower_bound(prefix); it != by_name_.end() && it->first.starts_with(prefix); ++it)
    ending.push_back(it->second);
  for (StreamState* e : ending) {
    ++e->alive;  // kept while flows go; `s` until the caller has read `passed`
    for (Flow* f : e->open) {
      decide(*f);
      if (f->state == State::pass) e->passed = true;
    }
    if (e->passed) s.passed = true;  // a connection's end passes with its HTTP/2 streams' flows
  }
  for (StreamState* e : ending) {
    e->ended = true;
    std::vector<Flow*> open;
    open.swap(e->open);
    for (Flow* f : open) {
      if (f->stream != e)
        unref(*f);
      else if (f->refs == 0)
        forget(*f);
    }
  }
  for (StreamState* e : ending)
    if (e != &s && --e->alive == 0) forget(*e);
  // A stream that ends inside one still open (a tunnel, a TLS layer's streams, which the proxy ends
  // before their connection) hands its verdict up: the enclosing stream's end passes too.
  if (size_t dot = s.id.rfind('.'); s.passed && dot != std::string::npos) {
    StreamState& parent = stream(s.id.substr(0, dot));
    if (!parent.ended) parent.passed = true;
  }
}

void FlowFilter::hold(Item& item, Flow& f, const std::string& stream_id) {
  item.flow = &f;
  ++f.refs;  // first: joining may release other references to it
  // A flow that goes on in a sub-stream (a WebSocket's frames after the 101) ends with that stream too.
  if (f.stream->id != stream_id) join(f, stream(stream_id));
}

void FlowFilter::unref(Flow& f) {
  if (--f.refs == 0 && (f.stream->ended || f.loose) && f.state != State::pending) forget(f);
}

void FlowFilter::forget(Flow& f) {
  StreamState& s = *f.stream;
  flows_.erase(f);
  if (--s.alive == 0 && s.ended) forget(s);
}

void FlowFilter::forget(StreamState& s) {
  if (last_stream_ == &s) last_stream_ = nullptr;
  if (s.id.find('.') != std::string::npos) by_name_.erase(s.id);
  streams_.erase(s);
}

void FlowFilter::decide(Flow& f) {
  if (f.state != State::pending) return;
  FlowView& view = views_[f.view];
  bool pass = filter_.matches(view);
  f.state = pass ? State::pass : State::drop;
  if (pass) {
    ++matched_;
    f.stream->passed = true;
  }
  view.envelopes.clear();  // its records are decided: the view is not needed again
  view.errors.clear();
  free_views_.push_back(f.view);
  f.view = kNone;
  --pending_;
}

// Gives the item its flow (or its own verdict) and the flow its envelope.
void FlowFilter::take(const envelope::Envelope& e, Item& item) {
  if (options_.per_envelope) {
    FlowView one;
    one.envelopes.push_back(&e);
    bool pass = filter_.matches(one);
    item.state = pass ? State::pass : State::drop;
    if (pass) {
      ++matched_;
      stream(e.stream_id).passed = true;
    }
    return;
  }
  Flow& f = flow(e.flow_id.empty() ? e.stream_id : e.flow_id, e.stream_id);
  hold(item, f, e.stream_id);
  if (f.state != State::pending) return;
  views_[f.view].envelopes.push_back(&e);
  // A 101 goes on as a WebSocket (or other) flow: decided when it ends.
  if (completes_flow(e) && std::get<envelope::HttpMessage>(e.message).status != 101) decide(f);
}

void FlowFilter::feed(envelope::Record record, const Sink& out, core::ByteView original, bool cbor) {
  Item item;
  item.cbor = cbor;
  item.at = text_base_ + text_.size();
  item.size = original.size();
  text_.append(original);
  item.record = std::make_unique<envelope::Record>(std::move(record));
  const auto& r = *item.record;
  if (const auto* e = std::get_if<envelope::Envelope>(&r)) {
    take(*e, item);
  } else if (const auto* err = std::get_if<envelope::ErrorRecord>(&r)) {
    if (options_.per_envelope) {
      item.state = stream(err->stream_id).passed ? State::pass : State::drop;
    } else {
      Flow& f = flow(err->flow_id.empty() ? err->stream_id : err->flow_id, err->stream_id);
      hold(item, f, err->stream_id);
      if (f.state == State::pending) views_[f.view].errors.push_back(err);
    }
  } else if (const auto* end = std::get_if<envelope::EndRecord>(&r)) {
    if (end->scope == "flow" && !options_.per_envelope) {
      hold(item, flow(end->flow_id, end->stream_id), end->stream_id);
      decide(*item.flow);
    } else if (end->scope == "flow") {  // judged one by one: passes with its stream, which goes on
      item.state = stream(end->stream_id).passed ? State::pass : State::drop;
    } else {
      // The stream is over: every flow of it is decided now, and the end passes with any of them.
      StreamState& s = stream(end->stream_id);
      end_stream(s);
      item.state = s.passed ? State::pass : State::drop;
      if (--s.alive == 0) forget(s);
    }
  } else {
    item.state = State::pass;  // the header, and records of kinds this reader does not know
  }
  place(std::move(item), out);
}

bool FlowFilter::feed_line(core::ByteView line, const Sink& out) {
  uint32_t slot;
  if (free_.empty()) {
    slot = static_cast<uint32_t>(envelopes_.size());
    envelopes_.push_back(std::make_unique<envelope::Envelope>());
  } else {
    slot = free_.back();
    free_.pop_back();
  }
  envelope::Envelope& e = *envelopes_[slot];
  if (!scan_envelope(line, filter_.needs(), e)) {
    free_.push_back(slot);
    return false;
  }
  Item item;
  item.at = text_base_ + text_.size();
  item.size = line.size();
  text_.append(line);
  take(e, item);
  if (item.flow && item.flow->state == State::pending) {
    item.envelope = slot;  // the flow's view points at it until the flow is decided
  } else {
    free_.push_back(slot);
  }
  place(std::move(item), out);
  return true;
}

void FlowFilter::place(Item item, const Sink& out) {
  queue_.push_back(std::move(item));
  while (pending_ > options_.max_pending && !order_.empty()) {
    Flow* f = order_.front();
    order_.pop_front();
    if (f->state == State::pending) {
      decide(*f);
      ++forced_;
    }
    unref(*f);
  }
  while (!order_.empty() && order_.front()->state != State::pending) {
    Flow* f = order_.front();
    order_.pop_front();
    unref(*f);
  }
  drain(out);
}

void FlowFilter::drain(const Sink& out) {
  while (!queue_.empty()) {
    Item& front = queue_.front();
    State s = front.flow ? front.flow->state : front.state;
    if (s == State::pending) break;
    if (s == State::pass) {
      Passed p;
      p.record = front.record.get();
      p.original = core::ByteView(text_).substr(front.at - text_base_, front.size);
      p.cbor = front.cbor;
      out(p);
    }
    if (front.envelope != kNone) free_.push_back(front.envelope);
    if (front.flow) unref(*front.flow);
    queue_.pop_front();
  }
  if (queue_.empty()) {
    text_base_ += text_.size();
    text_.clear();
  } else if (size_t used = queue_.front().at - text_base_; used > (1u << 20) && used * 2 > text_.size()) {
    text_.erase(0, used);
    text_base_ += used;
  }
}

void FlowFilter::finish(const Sink& out) {
  for (Flow* f : order_) decide(*f);
  for (Flow* f : order_) unref(*f);
  order_.clear();
  for (auto& item : queue_)
    if (!item.flow && item.state == State::pending) item.state = State::drop;
  drain(out);
}

}  // namespace sluice::filter
