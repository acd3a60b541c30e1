// A ConnObserver for proxy tests that keeps the request records a proxy reports (golden metrics, access log, spans).
#pragma once

#include <mutex>
#include <vector>

#include "agent/proxy/conn_observer.h"
#include "agent/proxy/request_record.h"

namespace zm::testing {

class RequestLog : public proxy::ConnObserver {
 public:
  void OnOpen(proxy::ConnRecord&) override {}
  void OnProgress(proxy::ConnRecord&) override {}
  void OnClose(proxy::ConnRecord&) override {}
  void OnTlsFailure(proxy::TlsFailure) override {}
  void OnRequest(const proxy::RequestRecord& r) override {
    std::lock_guard<std::mutex> l(mu_);
    records_.push_back(r);
  }
  std::vector<proxy::RequestRecord> records() {
    std::lock_guard<std::mutex> l(mu_);
    return records_;
  }
  void clear() {
    std::lock_guard<std::mutex> l(mu_);
    records_.clear();
  }

 private:
  std::mutex mu_;
  std::vector<proxy::RequestRecord> records_;
};

}  // namespace zm::testing
