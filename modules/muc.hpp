// Multi-user chat service (XEP-0045) on its own domain (conference.<host>).
// The router hands it every stanza for that domain through a domain route;
// the service queues them and handles them one at a time on a thread of its
// own, so room state needs no locks, then routes what the rooms answer.
#pragma once

#include <chrono>
#include <memory>

#include "modules/module.hpp"

namespace parley::modules {

namespace muc {
class Service;
}

class MucModule final : public Module {
 public:
  explicit MucModule(Context& context);
  ~MucModule() override;
  void start() override;
  void stop() override;

  // Waits until every stanza handed to the service so far (and what that
  // caused) is handled and routed; false on timeout. For tests.
  bool wait_idle(std::chrono::milliseconds timeout = std::chrono::seconds(10));

 private:
  Context ctx_;
  std::shared_ptr<muc::Service> service_;
};

}  // namespace parley::modules
