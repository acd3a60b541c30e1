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

NlRequest RuleRequest(uint16_t type, uint16_t flags, const PolicyRoutingConfig& cfg) {
  NlRequest req(type, NLM_F_REQUEST | flags);
  fib_rule_hdr h{};
  h.family = AF_INET;
  h.action = FR_ACT_TO_TBL;
  h.table = cfg.table < 256 ? static_cast<uint8_t>(cfg.table) : uint8_t{RT_TABLE_UNSPEC};
  req.SetFamilyHeader(h);
  req.AddU32(FRA_PRIORITY, cfg.priority);
  req.AddU32(FRA_FWMARK, cfg.mark);
  req.AddU32(FRA_FWMASK, cfg.mask);
  req.AddU32(FRA_TABLE, cfg.table);
  return req;
}

NlRequest RouteRequest(uint16_t type, uint16_t flags, const PolicyRoutingConfig& cfg, uint32_t lo) {
  NlRequest req(type, NLM_F_REQUEST | flags);
  rtmsg r{};
  r.rtm_family = AF_INET;
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

std::string Describe(const PolicyRoutingConfig& cfg) {
  char buf[128];
  snprintf(buf, sizeof(buf), "fwmark 0x%x/0x%x lookup %u pref %u", cfg.mark, cfg.mask, cfg.table, cfg.priority);
  return buf;
}

}  // namespace

Status PolicyRouting::Ensure(const PolicyRoutingConfig& cfg) {
  NetlinkSocket nl;
  if (Status s = nl.Open(0, false); !s.ok()) return s;
  const uint32_t lo = if_nametoindex("lo");
  if (lo == 0) return Status::Errno("if_nametoindex(lo)", errno);

  Status io;
  NlRequest rule = RuleRequest(RTM_NEWRULE, NLM_F_CREATE | NLM_F_EXCL, cfg);
  int err = nl.Transact(rule, &io);
  if (!io.ok()) return io;
  if (err != 0 && err != -EEXIST) return Status::Errno("adding ip rule " + Describe(cfg), err);

  NlRequest route = RouteRequest(RTM_NEWROUTE, NLM_F_CREATE | NLM_F_REPLACE, cfg, lo);
  err = nl.Transact(route, &io);
  if (!io.ok()) return io;
  if (err != 0) return Status::Errno("adding route local 0.0.0.0/0 dev lo table " + std::to_string(cfg.table), err);
  zm::log::Debug("policy routing ensured", {{"rule", Describe(cfg)}});
  return Status::Ok();
}

Status PolicyRouting::Remove(const PolicyRoutingConfig& cfg) {
  NetlinkSocket nl;
  if (Status s = nl.Open(0, false); !s.ok()) return s;
  Status io;
  NlRequest rule = RuleRequest(RTM_DELRULE, 0, cfg);
  int err = nl.Transact(rule, &io);
  if (!io.ok()) return io;
  if (err != 0 && err != -ENOENT) return Status::Errno("deleting ip rule " + Describe(cfg), err);
  const uint32_t lo = if_nametoindex("lo");
  NlRequest route = RouteRequest(RTM_DELROUTE, 0, cfg, lo);
  err = nl.Transact(route, &io);
  if (!io.ok()) return io;
  if (err != 0 && err != -ESRCH && err != -ENOENT) {
    return Status::Errno("deleting route local 0.0.0.0/0 table " + std::to_string(cfg.table), err);
  }
  return Status::Ok();
}

}  // namespace zm::agent::bpf
