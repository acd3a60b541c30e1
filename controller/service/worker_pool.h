// A few threads running queued tasks in order: the blocking parts of the callback-served Config streams (a
// TokenReview, building a push) run here instead of on gRPC's callback threads or on a thread per stream.
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <functional>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

namespace zm::ctrl {

class WorkerPool {
 public:
  // `name` (at most 15 characters) names the threads for top and perf.
  WorkerPool(size_t threads, const std::string& name);
  ~WorkerPool();  // runs what is queued, then joins
  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  void Post(std::function<void()> task);

 private:
  void Run();

  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<std::function<void()>> tasks_;
  bool stopping_ = false;
  std::vector<std::thread> threads_;
};

}  // namespace zm::ctrl
