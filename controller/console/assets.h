// The console's single-page app (ui/), built by esbuild at build time and compiled into the binary by
// zm_console_assets: nothing is read from disk or downloaded at run time.
#pragma once

#include <string_view>
#include <vector>

namespace zm::ctrl::console {

struct Asset {
  std::string_view path;
  std::string_view content_type;
  std::string_view body;
};

// "/" and "/index.html" -> index.html; "/assets/app.js" ...; nullptr if there is no such file.
const Asset* FindAsset(std::string_view path);
std::vector<std::string_view> AssetPaths();

}  // namespace zm::ctrl::console
