// The join-token file (format: join_tokens.h) as the controller uses it: loaded at start, then re-read whenever it
// changes, so a token is added, replaced or revoked by editing the file, without a restart. Changes are found by
// polling stat() of the path (device, inode, size, mtime, ctime; stat follows symlinks, so a Kubernetes Secret mount
// swapping its ..data directory is seen too). A file that cannot be read or parsed keeps the last good set in force
// (the error is logged once); there is never a moment without tokens.
#pragma once

#include <sys/stat.h>

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "controller/auth/join_tokens.h"

namespace zm::ctrl {

class JoinTokenFile {
 public:
  // Loads once; nullptr with *error (naming the file and line) if the first load fails.
  static std::unique_ptr<JoinTokenFile> Open(const std::string& path, std::string* error);
  ~JoinTokenFile();

  // Thread-safe. The one-argument form uses the current time.
  JoinTokenMatch Match(std::string_view token) const;
  JoinTokenMatch Match(std::string_view token, int64_t now_unix) const;
  std::vector<JoinTokenInfo> Describe() const;
  // Re-reads the file if stat() says it changed. True if a new set is now in force.
  bool Reload();
  // The last load error ("" after a good load).
  std::string last_error() const;
  // Polls on a thread of its own until Stop.
  void Watch(std::chrono::milliseconds interval = std::chrono::milliseconds(500));
  void Stop();

 private:
  struct FileId {
    dev_t dev = 0;
    ino_t ino = 0;
    off_t size = -1;
    int64_t mtime_ns = 0, ctime_ns = 0;
    bool operator==(const FileId&) const = default;
  };
  JoinTokenFile() = default;
  bool Stat(FileId* id, std::string* error) const;
  bool LoadFile(std::string* error);  // reads + parses; on success swaps the set in (mu_ not held)

  std::string path_;
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::shared_ptr<const JoinTokens> current_;  // guarded by mu_
  std::string last_error_;                     // guarded by mu_
  std::mutex reload_mu_;                       // one Reload at a time
  FileId seen_;                                // guarded by reload_mu_: the file version last read
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace zm::ctrl
