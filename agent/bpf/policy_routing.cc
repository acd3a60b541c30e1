#include "agent/bpf/policy_routing.h"

#include <linux/fib_rules.h>
#include <net/if.h>
#include <sys/socket.h>

#include <cerrno>
#include <string>

#include "agent/bpf/netlink.h"
#include "common/log.h"

namespace zm::agent::bpf {
namespace {

NlRequest RuleRequest(uint16_t type, uint16_t flags, const PolicyRoutingConfig& cfg, int family) {
  NlRequest req(type, NLM_F_REQUEST | flags);
  fib_rule_hdr h{};
  h.family = static_cast<uint8_t>(family);
  h.action = FR_ACT_TO_TBL;
  h.table = cfg.table < 256 ? static_cast<uint8_t>(cfg.table) : uint8_t{RT_TABLE_UNSPEC};
  req.SetFamilyHeader(h);
  req.AddU32(FRA_PRIORITY, cfg.priority);
  req.AddU32(FRA_FWMARK, cfg.mark);
  req.AddU32(FRA_FWMASK, cfg.mask);
  req.AddU32(FRA_TABLE, cfg.table);
  return req;
}

NlRequest RouteRequest(uint16_t type, uint16_t flags, const PolicyRoutingConfig& cfg, uint32_t lo, int family) {
  NlRequest req(type, NLM_F_REQUEST | flags);
  rtmsg r{};
  r.rtm_family = static_cast<uint8_t>(family);
  r.rtm_dst_len = 0;
  r.rtm_table = cfg.table < 256 ? static_cast<uint8_t>(cfg.table) : uint8_t{RT_TABLE_UNSPEC};
  r.rtm_protocol = RTPROT_STATIC;
  r.rtm_scope = RT_SCOPE_HOST;
  r.rtm_type = RTN_LOCAL;
  req.SetFamilyHeader(r);
  req.AddU32(RTA_TABLE, cfg.table);
  req.AddU32(RTA_OIF, lo);
  return req;
}

std::string Describe(const PolicyRoutingConfig& cfg, int family) {
  char buf[128];
  snprintf(buf, sizeof(buf), "%sfwmark 0x%x/0x%x lookup %u pref %u", family == AF_INET6 ? "-6 " : "", cfg.mark,
           cfg.mask, cfg.table, cfg.priority);
  return buf;
}

std::string LocalRoute(const PolicyRoutingConfig& cfg, int family) {
  return std::string("local ") + (family == AF_INET6 ? "::/0" : "0.0.0.0/0") + " dev lo table " +
         std::to_string(cfg.table);
}

bool ValidFamily(int family) {
  return family == AF_INET || family == AF_INET6;
}

}  // namespace

Status PolicyRouting::Ensure(const PolicyRoutingConfig& cfg, int family) {
  if (!ValidFamily(family)) return Status::Error("policy routing: address family " + std::to_string(family));
  NetlinkSocket nl;
  if (Status s = nl.Open(0, false); !s.ok()) return s;
  const uint32_t lo = if_nametoindex("lo");
  if (lo == 0) return Status::Errno("if_nametoindex(lo)", errno);

  Status io;
  NlRequest rule = RuleRequest(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, cfg, family);
  int err = nl.Transact(rule, &io);
  if (!io.ok()) return io;
  if (err != 0 && err != -EEXIST) return Status::Errno("adding ip rule " + Describe(cfg, family), err);

  NlRequest route = RouteRequest(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, cfg, lo, family);
  err = nl.Transact(route, &io);
  if (!io.ok()) return io;
  if (err != 0) return Status::Errno("adding route " + LocalRoute(cfg, family), err);
  zm::log::Debug("policy routing ensured", {{"rule", Describe(cfg, family)}});
  return Status::Ok();
}

Status PolicyRouting::Remove(const PolicyRoutingConfig& cfg, int family) {
  if (!ValidFamily(family)) return Status::Error("policy routing: address family " + std::to_string(family));
  NetlinkSocket nl;
  if (Status s = nl.Open(0, false); !s.ok()) return s;
  Status io;
  // A node without IPv6 has nothing to remove: EAFNOSUPPORT counts as absent.
  auto absent = [&](int err) { return err == -ENOENT || (family == AF_INET6 && err == -EAFNOSUPPORT); };
  NlRequest rule = RuleRequest(RTM_DELRULE, 0, cfg, family);
  int err = nl.Transact(rule, &io);
  if (!io.ok()) return io;
  if (err != 0 && !absent(err)) return Status::Errno("deleting ip rule " + Describe(cfg, family), err);
  const uint32_t lo = if_nametoindex("lo");
  NlRequest route = RouteRequest(RTM_DELROUTE, 0, cfg, lo, family);
  err = nl.Transact(route, &io);
  if (!io.ok()) return io;
  if (err != 0 && err != -ESRCH && !absent(err)) return Status::Errno("deleting route " + LocalRoute(cfg, family), err);
  return Status::Ok();
}

}  // namespace zm::agent::bpf
