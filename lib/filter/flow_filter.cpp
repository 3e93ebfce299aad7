#include "filter/flow_filter.hpp"

namespace sluice::filter {

namespace {

// The final response of an HTTP exchange: the flow's verdict can be given.
bool completes_flow(const envelope::Envelope& e) {
  if (e.protocol != envelope::Protocol::http || e.modified || !e.overlay.empty()) return false;
  const auto* m = std::get_if<envelope::HttpMessage>(&e.message);
  return m && m->kind == envelope::HttpMessage::Kind::response && m->status >= 200;
}

}  // namespace

FlowFilter::Flow& FlowFilter::flow(const std::string& id, const std::string& stream) {
  auto [it, fresh] = flows_.try_emplace(id);
  if (fresh) {
    it->second.stream = stream;
    order_.push_back(id);
    ++pending_;
  }
  return it->second;
}

void FlowFilter::decide(Flow& f) {
  if (f.state != State::pending) return;
  bool pass = filter_.matches(f.view);
  f.state = pass ? State::pass : State::drop;
  if (pass) {
    ++matched_;
    stream_passed_[f.stream] = true;
  }
  f.view = FlowView{};  // its records are decided: the view is not needed again
  --pending_;
}

void FlowFilter::feed(envelope::Record record, const Sink& out, std::string original) {
  Item item{std::move(record), std::move(original), {}, State::pending};
  if (auto* e = std::get_if<envelope::Envelope>(&item.record)) {
    if (options_.per_envelope) {
      FlowView one;
      one.envelopes.push_back(e);
      bool pass = filter_.matches(one);
      item.state = pass ? State::pass : State::drop;
      if (pass) {
        ++matched_;
        stream_passed_[e->stream_id] = true;
      }
      queue_.push_back(std::move(item));
    } else {
      item.flow = e->flow_id.empty() ? e->stream_id : e->flow_id;
      Flow& f = flow(item.flow, e->stream_id);
      queue_.push_back(std::move(item));
      auto& placed = std::get<envelope::Envelope>(queue_.back().record);  // deque: the address stays put
      if (f.state == State::pending) {
        f.view.envelopes.push_back(&placed);
        if (completes_flow(placed)) {
          // A 101 goes on as a WebSocket (or other) flow: decided when it ends.
          if (std::get<envelope::HttpMessage>(placed.message).status != 101) decide(f);
        }
      }
    }
  } else if (auto* err = std::get_if<envelope::ErrorRecord>(&item.record)) {
    item.flow = err->flow_id.empty() ? err->stream_id : err->flow_id;
    if (options_.per_envelope) {
      item.flow.clear();
      item.state = stream_passed_[err->stream_id] ? State::pass : State::drop;
      queue_.push_back(std::move(item));
    } else {
      Flow& f = flow(item.flow, err->stream_id);
      queue_.push_back(std::move(item));
      if (f.state == State::pending) f.view.errors.push_back(&std::get<envelope::ErrorRecord>(queue_.back().record));
    }
  } else if (auto* end = std::get_if<envelope::EndRecord>(&item.record)) {
    if (end->scope == "flow" && !options_.per_envelope) {
      item.flow = end->flow_id;
      Flow& f = flow(item.flow, end->stream_id);
      decide(f);
    } else {
      // The stream is over: every flow of it is decided now, and the end passes with any of them.
      if (!options_.per_envelope)
        for (auto& [id, f] : flows_)
          if (f.stream == end->stream_id) decide(f);
      item.state = stream_passed_[end->stream_id] ? State::pass : State::drop;
    }
    queue_.push_back(std::move(item));
  } else {
    item.state = State::pass;  // the header, and records of kinds this reader does not know
    queue_.push_back(std::move(item));
  }
  while (pending_ > options_.max_pending && !order_.empty()) {
    auto it = flows_.find(order_.front());
    order_.pop_front();
    if (it == flows_.end() || it->second.state != State::pending) continue;
    decide(it->second);
    ++forced_;
  }
  while (!order_.empty()) {  // forget the ids of decided flows at the front
    auto it = flows_.find(order_.front());
    if (it != flows_.end() && it->second.state == State::pending) break;
    order_.pop_front();
  }
  drain(out);
}

void FlowFilter::drain(const Sink& out) {
  while (!queue_.empty()) {
    Item& front = queue_.front();
    State s = front.state;
    if (!front.flow.empty()) {
      auto it = flows_.find(front.flow);
      s = it == flows_.end() ? State::drop : it->second.state;
    }
    if (s == State::pending) return;
    if (s == State::pass) out(std::move(front.record), std::move(front.original));
    queue_.pop_front();
  }
}

void FlowFilter::finish(const Sink& out) {
  for (const auto& id : order_) {
    auto it = flows_.find(id);
    if (it != flows_.end()) decide(it->second);
  }
  order_.clear();
  for (auto& item : queue_)
    if (item.flow.empty() && item.state == State::pending) item.state = State::drop;
  drain(out);
}

}  // namespace sluice::filter
