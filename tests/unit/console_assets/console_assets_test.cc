// The console's single-page app compiled into the controller: "/" is the HTML page, it loads the bundle, and the
// bundle is served as JavaScript with the console's code in it.
#include <gtest/gtest.h>

#include <algorithm>
#include <string>

#include "controller/console/assets.h"

namespace zm::test {
namespace {

using ctrl::console::Asset;
using ctrl::console::AssetPaths;
using ctrl::console::FindAsset;

TEST(ConsoleAssets, RootServesIndexThatLoadsTheBundle) {
  const Asset* root = FindAsset("/");
  ASSERT_NE(root, nullptr);
  EXPECT_EQ(root, FindAsset("/index.html"));
  EXPECT_EQ(root->content_type, "text/html; charset=utf-8");
  EXPECT_NE(root->body.find("<!doctype html>"), std::string_view::npos);
  EXPECT_NE(root->body.find("src=\"/assets/app.js\""), std::string_view::npos);
  EXPECT_NE(root->body.find("href=\"/assets/app.css\""), std::string_view::npos);
}

TEST(ConsoleAssets, BundleIsJavaScriptThatCallsTheApi) {
  const Asset* js = FindAsset("/assets/app.js");
  ASSERT_NE(js, nullptr);
  EXPECT_EQ(js->content_type, "text/javascript; charset=utf-8");
  EXPECT_GT(js->body.size(), 1000u);
  EXPECT_EQ(js->body.find("<html"), std::string_view::npos);
  // Routes the pages call, and the header the token travels in (never a cookie).
  for (std::string_view needle : {"/api/session", "/api/overview", "/api/wizard/", "Authorization", "Bearer "}) {
    EXPECT_NE(js->body.find(needle), std::string_view::npos) << needle;
  }
  const Asset* css = FindAsset("/assets/app.css");
  ASSERT_NE(css, nullptr);
  EXPECT_EQ(css->content_type, "text/css; charset=utf-8");
}

TEST(ConsoleAssets, UnknownPathsAreNotFound) {
  for (std::string_view p :
       {"", "/nope", "/assets/", "/assets/app.js.map", "/../index.html", "/INDEX.HTML", "index.html"}) {
    EXPECT_EQ(FindAsset(p), nullptr) << p;
  }
}

TEST(ConsoleAssets, PathsListEveryAssetOnce) {
  auto paths = AssetPaths();
  ASSERT_EQ(paths.size(), 3u);
  for (std::string_view p : {"/index.html", "/assets/app.js", "/assets/app.css"}) {
    EXPECT_EQ(std::count(paths.begin(), paths.end(), p), 1) << p;
    const Asset* a = FindAsset(p);
    ASSERT_NE(a, nullptr) << p;
    EXPECT_EQ(a->path, p);
    EXPECT_FALSE(a->body.empty()) << p;
  }
}

}  // namespace
}  // namespace zm::test
