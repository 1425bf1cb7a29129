#include "cp/ike/engine/shm_backend.h"

#include <algorithm>

#include "shared/shm/status.h"

namespace cygnet::ike {

namespace {

std::string refused(const char* what, const shm::Ack& a) {
  return std::string("cygnet-dp refused ") + what + ": " + std::string(shm::status_name(a.status)) +
         (a.text.empty() ? "" : ": " + a.text);
}

shm::SaKey key_of(const SaConfig& s) { return shm::SaKey{s.spi, s.dir, s.dst}; }

}  // namespace

ShmBackend::ShmBackend(std::unique_ptr<shm::ShmClient> client, std::chrono::milliseconds timeout)
    : client_(std::move(client)), timeout_(timeout) {}

Result<std::unique_ptr<ShmBackend>> ShmBackend::attach(const std::string& instance) {
  auto c = shm::ShmClient::attach(instance);
  if (!c) return make_error("cannot reach cygnet-dp (instance '" + instance + "'): " + c.error().message);
  return std::make_unique<ShmBackend>(std::move(*c));
}

Result<void> ShmBackend::push(const ChildSaSpec& c) {
  auto begin = client_->batch_begin(static_cast<std::uint32_t>(2 + c.policies.size()));
  if (!begin) return begin.error();
  // The inbound SA first (RFC 7296 2.8's order also within the batch).
  for (const SaConfig* sa : {&c.inbound, &c.outbound}) {
    if (auto r = client_->sa_add(*sa); !r) {
      (void)client_->batch_abort();
      return r.error();
    }
  }
  for (const Policy& p : c.policies) {
    if (auto r = client_->policy_add(p); !r) {
      (void)client_->batch_abort();
      return r.error();
    }
  }
  return commit("the Child SA");
}

Result<void> ShmBackend::commit(const char* what) {
  auto id = client_->batch_commit();
  if (!id) return id.error();
  auto ack = client_->wait_ack(*id, timeout_);
  if (!ack) return ack.error();
  if (ack->status != shm::Status::ok) return make_error(refused(what, *ack));
  return {};
}

Result<void> ShmBackend::install_child(const ChildSaSpec& c) {
  if (auto r = push(c); !r) return r;
  live_.push_back(c);
  return {};
}

Result<void> ShmBackend::remove_child(const ChildSaSpec& c) {
  auto it = std::find_if(live_.begin(), live_.end(), [&](const ChildSaSpec& x) {
    return x.reqid == c.reqid && x.inbound.spi == c.inbound.spi && x.outbound.spi == c.outbound.spi;
  });
  if (it != live_.end()) live_.erase(it);
  auto begin = client_->batch_begin(static_cast<std::uint32_t>(2 + c.policies.size()));
  if (!begin) return begin.error();
  for (const Policy& p : c.policies) {
    if (auto r = client_->policy_delete(p); !r) {
      (void)client_->batch_abort();
      return r.error();
    }
  }
  for (const SaConfig* sa : {&c.outbound, &c.inbound}) {
    if (auto r = client_->sa_delete(key_of(*sa)); !r) {
      (void)client_->batch_abort();
      return r.error();
    }
  }
  return commit("removing the Child SA");
}

Result<std::size_t> ShmBackend::resync() {
  if (!client_->server_restarted()) return std::size_t{0};
  if (auto r = client_->reattach(); !r) return r.error();
  std::size_t n = 0;
  for (const ChildSaSpec& c : live_) {
    if (auto r = push(c); !r) return make_error("resync after a cygnet-dp restart: " + r.error().message);
    ++n;
  }
  return n;
}

}  // namespace cygnet::ike
