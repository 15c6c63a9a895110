// The worker pool for blocking work (storage, password hashing). A coroutine
// on a shard awaits run(); the work happens on a worker thread and the
// coroutine resumes on its own shard (GUIDE §3).
#pragma once

#include <boost/asio/co_spawn.hpp>
#include <boost/asio/this_coro.hpp>
#include <boost/asio/thread_pool.hpp>
#include <boost/asio/use_awaitable.hpp>
#include <type_traits>

#include "router/router.hpp"

namespace parley::router {

class WorkerPool {
 public:
  explicit WorkerPool(std::size_t threads) : pool_(threads) {}
  ~WorkerPool() { stop(); }

  // Runs f() on a worker thread; exceptions propagate to the awaiting coroutine.
  // g++ 12 mis-copies closures that hold strings by value when they cross a
  // coroutine boundary (a bad free under ASan), so run() is not a coroutine
  // itself and callers capture by reference: the awaiting frame outlives f.
  template <class F>
  auto run(F f) -> Task<std::invoke_result_t<F>> {
    using R = std::invoke_result_t<F>;
    return boost::asio::co_spawn(
        pool_.get_executor(), [f = std::move(f)]() mutable -> Task<R> { co_return f(); },
        boost::asio::use_awaitable);
  }

  void stop() {
    pool_.stop();
    pool_.join();
  }

 private:
  boost::asio::thread_pool pool_;
};

}  // namespace parley::router
