// The decode cache keeps CheckSet's duplicate indexes from one load to the next (controller/manifest/set_index.h):
// after any sequence of file edits, LoadDir with the cache must give what LoadDir without it gives (the same errors in
// the same order, the same notices, resources, Namespaces and grants).
#include <gtest/gtest.h>

#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "controller/manifest/manifest.h"
#include "tests/unit/controller/test_env.h"

namespace zm::test {
namespace {

std::string Errors(const std::vector<manifest::Error>& errors) {
  std::string all;
  for (const auto& e : errors) all += e.file + ":" + std::to_string(e.line) + ": " + e.reason + "\n";
  return all;
}

// Everything of a Result that the checks decide, as text (digests are the cache's own: left out).
std::string Dump(const manifest::Result& r) {
  std::string out = "errors:\n" + Errors(r.errors) + "notices:\n" + Errors(r.notices) + "resources:\n";
  for (const auto& l : r.resources) {
    std::string bytes;
    EXPECT_TRUE(l.resource->SerializeToString(&bytes));
    out += l.file + ":" + std::to_string(l.line) + " " + manifest::KeyOf(l.resource) + " " +
           std::to_string(std::hash<std::string>{}(bytes)) + " " + std::to_string(l.inherit_enrolled) +
           std::to_string(l.inherit_mode) + "\n";
  }
  for (const auto& ns : r.namespaces)
    out += "namespace " + ns.name + " " + ns.file + ":" + std::to_string(ns.line) + "\n";
  for (const auto& g : r.grants)
    out += "grant " + g.ns + "/" + g.name + " " + g.file + ":" + std::to_string(g.line) + "\n";
  return out;
}

// Random documents from small name and address spaces, so that names, IPs, VIPs and MeshConfigs collide across
// files, routes find or miss their Services (or find one of two Services of the same name, with other ports).
class Docs {
 public:
  explicit Docs(uint32_t seed) : rng_(seed) {}

  std::string One() {
    switch (Pick(9)) {
      case 0:
      case 1:
      case 2: {
        std::string n = std::to_string(Pick(6)), ns = Pick(3) ? "shop" : "ops";
        if (Pick(3) == 0) {
          return "apiVersion: zeromesh.io/v1alpha1\nkind: Workload\nmetadata: {name: w" + n + ", namespace: " + ns +
                 "}\nspec: {serviceAccount: sa, node: node1, ips: [10.0.0." + std::to_string(Pick(6)) +
                 ", 'fd00::" + std::to_string(Pick(6) + 1) + "']}\n";
        }
        return WorkloadYaml("w" + n, ns, "sa", "node" + std::to_string(Pick(2) + 1),
                            "10.0.0." + std::to_string(Pick(6)), "web");
      }
      case 3:
      case 4: {
        std::string vip;
        switch (Pick(3)) {
          case 0:
            vip = "vip: 10.96.0." + std::to_string(Pick(4)) + ", ";
            break;
          case 1:
            vip = "vips: [10.96.0." + std::to_string(Pick(4)) + ", 'fd00:96::" + std::to_string(Pick(4) + 1) + "'], ";
            break;
          default:
            break;  // no VIP
        }
        return "apiVersion: zeromesh.io/v1alpha1\nkind: Service\nmetadata: {name: s" + std::to_string(Pick(4)) +
               ", namespace: " + (Pick(4) ? "shop" : "ops") + "}\nspec: {" + vip +
               "ports: [{port: " + std::to_string(80 + Pick(2)) + "}], selector: {app: web}}\n";
      }
      case 5:
        return "apiVersion: gateway.networking.k8s.io/v1alpha2\nkind: TCPRoute\nmetadata: {name: r" +
               std::to_string(Pick(3)) + ", namespace: shop}\nspec:\n  parentRefs: [{kind: Service, name: s" +
               std::to_string(Pick(4)) + ", port: 80}]\n  rules:\n  - backendRefs: [{name: s" +
               std::to_string(Pick(4)) + (Pick(2) ? ", namespace: ops" : "") +
               ", port: " + std::to_string(80 + Pick(2)) + ", weight: 1}]\n";
      case 6:
        return Pick(2) ? "apiVersion: zeromesh.io/v1alpha1\nkind: MeshConfig\nmetadata: {name: m" +
                             std::to_string(Pick(2)) + "}\nspec: {}\n"
                       : "apiVersion: gateway.networking.k8s.io/v1beta1\nkind: ReferenceGrant\n"
                         "metadata: {name: g, namespace: ops}\nspec:\n"
                         "  from: [{group: gateway.networking.k8s.io, kind: TCPRoute, namespace: shop}]\n"
                         "  to: [{group: \"\", kind: Service}]\n";
      case 7:
        return "apiVersion: v1\nkind: Namespace\nmetadata:\n  name: " + std::string(Pick(2) ? "shop" : "ops") +
               "\n  labels:\n    zeromesh.io/mesh: " + (Pick(2) ? "enabled" : "disabled") + "\n";
      default:
        return Pick(4) ? "apiVersion: zeromesh.io/v1alpha1\nkind: Workload\nmetadata: {name: bad}\nspec: {ip: nope}\n"
                       : "key: [unclosed\n";
    }
  }

  std::vector<std::string> Some(size_t max) {
    std::vector<std::string> docs(Pick(max + 1));
    for (auto& d : docs) d = One();
    return docs;
  }

  size_t Pick(size_t n) { return std::uniform_int_distribution<size_t>(0, n - 1)(rng_); }

 private:
  std::mt19937 rng_;
};

std::string Join(const std::vector<std::string>& docs) {
  std::string text;
  for (size_t i = 0; i < docs.size(); ++i) text += (i ? "---\n" : "") + docs[i];
  return text;
}

TEST(SetIndex, RandomFileEditsLoadAsWithoutTheCache) {
  size_t with_errors = 0;
  std::map<std::string, int> seen;  // kinds of errors met, so the run is known to exercise them
  for (uint32_t seed = 1; seed <= 8; ++seed) {
    SCOPED_TRACE("seed " + std::to_string(seed));
    std::string dir = MakeTempDir();
    Docs gen(seed);
    std::map<std::string, std::vector<std::string>> files;  // name -> documents, as on disk
    auto write = [&](const std::string& name) { WriteFile(dir + "/" + name, Join(files[name])); };
    for (int i = 0; i < 4; ++i) {
      files["f" + std::to_string(i) + ".yaml"] = gen.Some(4);
      write("f" + std::to_string(i) + ".yaml");
    }
    manifest::DecodeCache cache;
    for (int step = 0; step < 50; ++step) {
      SCOPED_TRACE("step " + std::to_string(step));
      auto name_of = [&](size_t i) { return std::next(files.begin(), static_cast<long>(i))->first; };
      std::string edit;
      switch (files.empty() ? 0 : gen.Pick(7)) {
        case 0: {  // a new file, or a file rewritten
          std::string name = "f" + std::to_string(gen.Pick(7)) + ".yaml";
          files[name] = gen.Some(4);
          write(name);
          edit = "write " + name;
          break;
        }
        case 1: {  // a file deleted
          std::string name = name_of(gen.Pick(files.size()));
          std::filesystem::remove(dir + "/" + name);
          files.erase(name);
          edit = "delete " + name;
          break;
        }
        case 2: {  // a file renamed: its resources move in the order
          std::string from = name_of(gen.Pick(files.size())), to = "f" + std::to_string(gen.Pick(7)) + ".yaml";
          if (from == to) break;
          std::filesystem::rename(dir + "/" + from, dir + "/" + to);
          files[to] = files[from];
          files.erase(from);
          edit = "rename " + from + " " + to;
          break;
        }
        case 3: {  // a document moves from one file to another (a duplicate may move with it)
          std::string from = name_of(gen.Pick(files.size())), to = name_of(gen.Pick(files.size()));
          if (files[from].empty()) break;
          size_t i = gen.Pick(files[from].size());
          std::string doc = files[from][i];
          files[from].erase(files[from].begin() + static_cast<long>(i));
          auto& dest = files[to];
          dest.insert(dest.begin() + static_cast<long>(gen.Pick(dest.size() + 1)), doc);
          write(from);
          write(to);
          edit = "move from " + from + " to " + to;
          break;
        }
        case 4: {  // a copy of a document in another file: a duplicate name and address
          std::string from = name_of(gen.Pick(files.size())), to = name_of(gen.Pick(files.size()));
          if (files[from].empty()) break;
          files[to].push_back(files[from][gen.Pick(files[from].size())]);
          write(to);
          edit = "copy from " + from + " to " + to;
          break;
        }
        case 5: {  // one document replaced
          std::string name = name_of(gen.Pick(files.size()));
          if (files[name].empty()) break;
          files[name][gen.Pick(files[name].size())] = gen.One();
          write(name);
          edit = "replace in " + name;
          break;
        }
        default:
          edit = "nothing";  // a rescan of the same directory
          break;
      }
      SCOPED_TRACE(edit);
      auto cached = manifest::LoadDir(dir, manifest::Limits{}, &cache);
      auto plain = manifest::LoadDir(dir, manifest::Limits{}, nullptr);
      ASSERT_EQ(Dump(cached), Dump(plain));
      with_errors += !plain.ok();
      for (const auto& e : plain.errors) {
        for (const char* what : {"duplicate name", "duplicate workload IP", "duplicate service VIP",
                                 "only one MeshConfig", "names no Service", "is not a port of", "bad YAML"}) {
          if (e.reason.find(what) != std::string::npos) ++seen[what];
        }
      }
    }
    RemoveTree(dir);
  }
  EXPECT_GT(with_errors, 0u);
  for (const char* what : {"duplicate name", "duplicate workload IP", "duplicate service VIP", "only one MeshConfig",
                           "names no Service", "is not a port of", "bad YAML"}) {
    EXPECT_GT(seen[what], 0) << what;
  }
}

// A duplicate's error names the first definition in file order: when that one is deleted, the next takes its place.
TEST(SetIndex, TheFirstDefinitionWinsAndTheNextTakesOver) {
  std::string dir = MakeTempDir();
  WriteFile(dir + "/a.yaml", WorkloadYaml("w", "shop", "sa", "node1", "10.0.0.1"));
  WriteFile(dir + "/b.yaml", WorkloadYaml("w", "shop", "sa", "node1", "10.0.0.2"));
  WriteFile(dir + "/c.yaml", WorkloadYaml("w", "shop", "sa", "node1", "10.0.0.2"));
  manifest::DecodeCache cache;
  auto r = manifest::LoadDir(dir, manifest::Limits{}, &cache);
  EXPECT_EQ(Errors(r.errors),
            dir + "/b.yaml:1: duplicate name: Workload/shop/w is already defined at " + dir + "/a.yaml:1\n" + dir +
                "/c.yaml:1: duplicate name: Workload/shop/w is already defined at " + dir + "/a.yaml:1\n" + dir +
                "/c.yaml:1: duplicate workload IP 10.0.0.2 (also used at " + dir + "/b.yaml:1)\n");
  std::filesystem::remove(dir + "/a.yaml");
  r = manifest::LoadDir(dir, manifest::Limits{}, &cache);
  EXPECT_EQ(Errors(r.errors), dir + "/c.yaml:1: duplicate name: Workload/shop/w is already defined at " + dir +
                                  "/b.yaml:1\n" + dir + "/c.yaml:1: duplicate workload IP 10.0.0.2 (also used at " +
                                  dir + "/b.yaml:1)\n");
  WriteFile(dir + "/c.yaml", WorkloadYaml("v", "shop", "sa", "node1", "10.0.0.3"));
  r = manifest::LoadDir(dir, manifest::Limits{}, &cache);
  EXPECT_TRUE(r.ok()) << Errors(r.errors);
  RemoveTree(dir);
}

}  // namespace
}  // namespace zm::test
