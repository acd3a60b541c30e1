#include "agent/bpf/conntrack_bypass.h"

#include <libmnl/libmnl.h>
#include <libnftnl/chain.h>
#include <libnftnl/expr.h>
#include <libnftnl/rule.h>
#include <libnftnl/table.h>
#include <linux/netfilter.h>
#include <linux/netfilter/nf_tables.h>
#include <sys/time.h>

#include <cerrno>
#include <cstring>
#include <ctime>
#include <memory>
#include <string>
#include <vector>

namespace zm::agent::bpf {
namespace {

constexpr const char* kChain = "prerouting";
constexpr const char* kOutputChain = "output";
constexpr int kRawPriority = -300;  // NF_IP_PRI_RAW: before conntrack (-200) and every NAT hook

struct TableDeleter {
  void operator()(nftnl_table* t) const { nftnl_table_free(t); }
};
struct ChainDeleter {
  void operator()(nftnl_chain* c) const { nftnl_chain_free(c); }
};
struct RuleDeleter {
  void operator()(nftnl_rule* r) const { nftnl_rule_free(r); }
};
struct SocketCloser {
  void operator()(mnl_socket* s) const { mnl_socket_close(s); }
};

std::unique_ptr<nftnl_table, TableDeleter> Table() {
  std::unique_ptr<nftnl_table, TableDeleter> t(nftnl_table_alloc());
  nftnl_table_set_str(t.get(), NFTNL_TABLE_NAME, ConntrackBypass::kTable);
  nftnl_table_set_u32(t.get(), NFTNL_TABLE_FAMILY, NFPROTO_INET);
  return t;
}

// One nftables transaction: begin, the messages added by `fill`, end. Errors come back per message.
class Batch {
 public:
  Batch() : buf_(1 << 16), batch_(mnl_nlmsg_batch_start(buf_.data(), buf_.size())), seq_(time(nullptr)) {
    nftnl_batch_begin(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
    mnl_nlmsg_batch_next(batch_);
  }
  ~Batch() { mnl_nlmsg_batch_stop(batch_); }
  nlmsghdr* Header(uint16_t type, uint16_t flags) {
    nlmsghdr* h = nftnl_nlmsg_build_hdr(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), type, NFPROTO_INET,
                                        flags | NLM_F_ACK, seq_++);
    return h;
  }
  void Next() { mnl_nlmsg_batch_next(batch_); }
  Status Send() {
    nftnl_batch_end(static_cast<char*>(mnl_nlmsg_batch_current(batch_)), seq_++);
    mnl_nlmsg_batch_next(batch_);
    std::unique_ptr<mnl_socket, SocketCloser> nl(mnl_socket_open(NETLINK_NETFILTER));
    if (!nl) return Status::Errno("nfnetlink socket", errno);
    if (mnl_socket_bind(nl.get(), 0, MNL_SOCKET_AUTOPID) < 0) {
      return Status::Errno("nfnetlink bind", errno);
    }
    timeval tv{1, 0};  // acks arrive at once; never hang the agent on a kernel without nf_tables
    setsockopt(mnl_socket_get_fd(nl.get()), SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    if (mnl_socket_sendto(nl.get(), mnl_nlmsg_batch_head(batch_), mnl_nlmsg_batch_size(batch_)) < 0) {
      return Status::Errno("nfnetlink send", errno);
    }
    // One ack (or error) per message between begin and end (those two get none).
    const int expected = static_cast<int>(seq_ - first_msg_seq_ - 2);
    std::vector<char> rbuf(MNL_SOCKET_BUFFER_SIZE);
    for (int acked = 0; acked < expected;) {
      ssize_t n = mnl_socket_recvfrom(nl.get(), rbuf.data(), rbuf.size());
      if (n < 0) return Status::Errno("nfnetlink receive (no answer from nf_tables)", errno);
      for (auto* h = reinterpret_cast<nlmsghdr*>(rbuf.data()); mnl_nlmsg_ok(h, static_cast<int>(n));
           h = mnl_nlmsg_next(h, reinterpret_cast<int*>(&n))) {
        if (h->nlmsg_type == NLMSG_ERROR) {
          auto* err = static_cast<nlmsgerr*>(mnl_nlmsg_get_payload(h));
          if (err->error != 0) {
            return Status::Errno("nftables transaction for table zeromesh", err->error);
          }
          ++acked;
        }
      }
    }
    return Status::Ok();
  }

 private:
  std::vector<char> buf_;
  mnl_nlmsg_batch* batch_;
  uint32_t seq_;
  uint32_t first_msg_seq_ = seq_;  // the begin message's; acks are for the ones after it
};

void AddTable(Batch& b, uint16_t type, uint16_t flags) {
  auto t = Table();
  nftnl_table_nlmsg_build_payload(b.Header(type, flags), t.get());
  b.Next();
}

nftnl_expr* U32Compare(uint32_t value) {
  nftnl_expr* e = nftnl_expr_alloc("cmp");
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_SREG, NFT_REG_1);
  nftnl_expr_set_u32(e, NFTNL_EXPR_CMP_OP, NFT_CMP_EQ);
  nftnl_expr_set(e, NFTNL_EXPR_CMP_DATA, &value, sizeof(value));
  return e;
}

// A base chain of our table on |hook| (raw priority, policy accept) with one rule: meta mark & |mask| == |mark|
// notrack.
void AddNotrackChain(Batch& b, const char* chain, uint32_t hook, uint32_t mark, uint32_t mask) {
  std::unique_ptr<nftnl_chain, ChainDeleter> c(nftnl_chain_alloc());
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TABLE, ConntrackBypass::kTable);
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_NAME, chain);
  nftnl_chain_set_str(c.get(), NFTNL_CHAIN_TYPE, "filter");
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_HOOKNUM, hook);
  nftnl_chain_set_s32(c.get(), NFTNL_CHAIN_PRIO, kRawPriority);
  nftnl_chain_set_u32(c.get(), NFTNL_CHAIN_POLICY, NF_ACCEPT);
  nftnl_chain_nlmsg_build_payload(b.Header(NFT_MSG_NEWCHAIN, NLM_F_CREATE), c.get());
  b.Next();

  std::unique_ptr<nftnl_rule, RuleDeleter> r(nftnl_rule_alloc());
  nftnl_rule_set_str(r.get(), NFTNL_RULE_TABLE, ConntrackBypass::kTable);
  nftnl_rule_set_str(r.get(), NFTNL_RULE_CHAIN, chain);
  nftnl_rule_set_u32(r.get(), NFTNL_RULE_FAMILY, NFPROTO_INET);
  nftnl_expr* meta = nftnl_expr_alloc("meta");  // the rule owns its expressions once added
  nftnl_expr_set_u32(meta, NFTNL_EXPR_META_KEY, NFT_META_MARK);
  nftnl_expr_set_u32(meta, NFTNL_EXPR_META_DREG, NFT_REG_1);
  nftnl_rule_add_expr(r.get(), meta);
  nftnl_expr* bits = nftnl_expr_alloc("bitwise");
  const uint32_t zero = 0;
  nftnl_expr_set_u32(bits, NFTNL_EXPR_BITWISE_SREG, NFT_REG_1);
  nftnl_expr_set_u32(bits, NFTNL_EXPR_BITWISE_DREG, NFT_REG_1);
  nftnl_expr_set_u32(bits, NFTNL_EXPR_BITWISE_LEN, sizeof(uint32_t));
  nftnl_expr_set(bits, NFTNL_EXPR_BITWISE_MASK, &mask, sizeof(mask));  // the mark is host-endian in the register
  nftnl_expr_set(bits, NFTNL_EXPR_BITWISE_XOR, &zero, sizeof(zero));
  nftnl_rule_add_expr(r.get(), bits);
  nftnl_rule_add_expr(r.get(), U32Compare(mark));
  nftnl_rule_add_expr(r.get(), nftnl_expr_alloc("notrack"));
  nftnl_rule_nlmsg_build_payload(b.Header(NFT_MSG_NEWRULE, NLM_F_CREATE | NLM_F_APPEND), r.get());
  b.Next();
}

}  // namespace

Status ConntrackBypass::Ensure(uint32_t mark, uint32_t proxy_mark, uint32_t mask) {
  Batch b;
  // "add table; delete table; add table": ours is fresh whether or not it existed, in one transaction.
  AddTable(b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
  AddTable(b, NFT_MSG_DELTABLE, 0);
  AddTable(b, NFT_MSG_NEWTABLE, NLM_F_CREATE);
  AddNotrackChain(b, kChain, NF_INET_PRE_ROUTING, mark, mask);
  AddNotrackChain(b, kOutputChain, NF_INET_LOCAL_OUT, proxy_mark, mask);
  return b.Send();
}

Status ConntrackBypass::Remove() {
  Batch b;
  AddTable(b, NFT_MSG_NEWTABLE, NLM_F_CREATE);  // so that the delete cannot fail with ENOENT
  AddTable(b, NFT_MSG_DELTABLE, 0);
  return b.Send();
}

}  // namespace zm::agent::bpf
