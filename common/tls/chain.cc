#include "common/tls/chain.h"

#include <openssl/err.h>
#include <openssl/x509.h>

namespace zm::tls {

bool VerifyChain(const CertList& chain, const CertList& roots, std::string* why) {
  if (chain.empty()) {
    *why = "no certificate";
    return false;
  }
  bssl::UniquePtr<X509_STORE> store(X509_STORE_new());
  bssl::UniquePtr<STACK_OF(X509)> untrusted(sk_X509_new_null());
  bssl::UniquePtr<X509_STORE_CTX> ctx(X509_STORE_CTX_new());
  if (!store || !untrusted || !ctx) {
    *why = "out of memory";
    return false;
  }
  for (const auto& r : roots) X509_STORE_add_cert(store.get(), r.get());
  for (size_t i = 1; i < chain.size(); ++i) {
    // The stack frees what it holds: give it its own reference.
    X509_up_ref(chain[i].get());
    sk_X509_push(untrusted.get(), chain[i].get());
  }
  if (!X509_STORE_CTX_init(ctx.get(), store.get(), chain[0].get(), untrusted.get())) {
    *why = "cannot initialise chain verification";
    ERR_clear_error();
    return false;
  }
  if (X509_verify_cert(ctx.get()) != 1) {
    *why = X509_verify_cert_error_string(X509_STORE_CTX_get_error(ctx.get()));
    ERR_clear_error();
    return false;
  }
  return true;
}

}  // namespace zm::tls
