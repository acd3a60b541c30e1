// Proves that our static, hidden-visibility BoringSSL and the OpenSSL 3 that gRPC loads work in the SAME process AT
// THE SAME TIME. Debian's shared BoringSSL crashes in such a process because its symbols and OpenSSL's bind to the
// wrong library; our build avoids that by linking BoringSSL statically with -fvisibility=hidden (nothing of it reaches
// the dynamic symbol table) and listing it before gRPC on the link line.
//
// SymbolBinding checks the binding itself; ConcurrentHandshakes runs BoringSSL TLS 1.3 mTLS handshakes in worker
// threads while the main thread makes gRPC calls over OpenSSL-backed mTLS, with certificates made by BoringSSL.
//
// Only BoringSSL headers are included here (gRPC's public headers do not include OpenSSL's).
#include <dlfcn.h>
#include <elf.h>
#include <openssl/base.h>
#include <openssl/bio.h>
#include <openssl/bytestring.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/ec_key.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/mem.h>
#include <openssl/nid.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <grpcpp/grpcpp.h>
#include <grpcpp/security/credentials.h>
#include <grpcpp/security/server_credentials.h>
#include <gtest/gtest.h>

#include "coexist_echo.grpc.pb.h"

#ifndef OPENSSL_IS_BORINGSSL
#error "tls_coexist must be compiled against BoringSSL's headers, not OpenSSL's"
#endif

namespace {

using namespace std::chrono_literals;

constexpr const char* kServerName = "localhost";
constexpr const char* kServerCn = "coexist-server";
constexpr const char* kClientCn = "coexist-client";

// ---------------------------------------------------------------------------------------------------------------------
// Certificates, made with BoringSSL's X509 API.

bssl::UniquePtr<EVP_PKEY> NewP256Key() {
  bssl::UniquePtr<EC_KEY> ec(EC_KEY_new_by_curve_name(NID_X9_62_prime256v1));
  if (!ec || !EC_KEY_generate_key(ec.get())) return nullptr;
  bssl::UniquePtr<EVP_PKEY> key(EVP_PKEY_new());
  if (!key || !EVP_PKEY_assign_EC_KEY(key.get(), ec.release())) return nullptr;
  return key;
}

bool AddExt(X509* cert, X509* issuer, int nid, const char* value) {
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, cert, nullptr, nullptr, 0);
  bssl::UniquePtr<X509_EXTENSION> ext(X509V3_EXT_nconf_nid(nullptr, &ctx, nid, value));
  return ext && X509_add_ext(cert, ext.get(), -1);
}

// issuer == nullptr: self-signed CA.
bssl::UniquePtr<X509> MakeCert(EVP_PKEY* key, const char* cn, long serial, X509* issuer, EVP_PKEY* issuer_key,
                               const char* san, const char* eku) {
  bssl::UniquePtr<X509> cert(X509_new());
  if (!cert) return nullptr;
  X509* x = cert.get();
  X509* signer = issuer != nullptr ? issuer : x;
  if (!X509_set_version(x, X509_VERSION_3) || !ASN1_INTEGER_set(X509_get_serialNumber(x), serial) ||
      !X509_gmtime_adj(X509_getm_notBefore(x), -3600) || !X509_gmtime_adj(X509_getm_notAfter(x), 24 * 3600) ||
      !X509_set_pubkey(x, key)) {
    return nullptr;
  }
  X509_NAME* name = X509_get_subject_name(x);
  if (!X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC, reinterpret_cast<const uint8_t*>("zeromesh-test"), -1, -1,
                                  0) ||
      !X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC, reinterpret_cast<const uint8_t*>(cn), -1, -1, 0) ||
      !X509_set_issuer_name(x, X509_get_subject_name(signer))) {
    return nullptr;
  }
  bool ok = AddExt(x, signer, NID_subject_key_identifier, "hash");
  if (issuer == nullptr) {
    ok = ok && AddExt(x, signer, NID_basic_constraints, "critical,CA:TRUE") &&
         AddExt(x, signer, NID_key_usage, "critical,keyCertSign,cRLSign");
  } else {
    ok = ok && AddExt(x, signer, NID_authority_key_identifier, "keyid:always") &&
         AddExt(x, signer, NID_basic_constraints, "critical,CA:FALSE") &&
         AddExt(x, signer, NID_key_usage, "critical,digitalSignature") && AddExt(x, signer, NID_ext_key_usage, eku) &&
         AddExt(x, signer, NID_subject_alt_name, san);
  }
  if (!ok || !X509_sign(x, issuer_key != nullptr ? issuer_key : key, EVP_sha256())) return nullptr;
  return cert;
}

std::string BioToString(BIO* bio) {
  const uint8_t* data = nullptr;
  size_t len = 0;
  if (!BIO_mem_contents(bio, &data, &len)) return {};
  return std::string(reinterpret_cast<const char*>(data), len);
}

std::string CertPem(X509* cert) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_X509(bio.get(), cert)) return {};
  return BioToString(bio.get());
}

std::string KeyPem(EVP_PKEY* key) {
  bssl::UniquePtr<BIO> bio(BIO_new(BIO_s_mem()));
  if (!bio || !PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr)) return {};
  return BioToString(bio.get());
}

bssl::UniquePtr<X509> CertFromPem(const std::string& pem) {
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return bssl::UniquePtr<X509>(PEM_read_bio_X509(bio.get(), nullptr, nullptr, nullptr));
}

bssl::UniquePtr<EVP_PKEY> KeyFromPem(const std::string& pem) {
  bssl::UniquePtr<BIO> bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  return bssl::UniquePtr<EVP_PKEY>(PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr));
}

struct Pki {
  std::string ca_pem, server_cert_pem, server_key_pem, client_cert_pem, client_key_pem;
};

// Generates a CA and ECDSA P-256 server/client certificates; PEM is what both TLS stacks consume.
bool MakePki(Pki* out) {
  auto ca_key = NewP256Key();
  auto server_key = NewP256Key();
  auto client_key = NewP256Key();
  if (!ca_key || !server_key || !client_key) return false;
  auto ca = MakeCert(ca_key.get(), "coexist-test-ca", 1, nullptr, nullptr, nullptr, nullptr);
  if (!ca) return false;
  auto server =
      MakeCert(server_key.get(), kServerCn, 2, ca.get(), ca_key.get(), "DNS:localhost,IP:127.0.0.1", "serverAuth");
  auto client = MakeCert(client_key.get(), kClientCn, 3, ca.get(), ca_key.get(),
                         "URI:spiffe://cluster.local/ns/test/sa/coexist-client", "clientAuth");
  if (!server || !client) return false;
  out->ca_pem = CertPem(ca.get());
  out->server_cert_pem = CertPem(server.get());
  out->server_key_pem = KeyPem(server_key.get());
  out->client_cert_pem = CertPem(client.get());
  out->client_key_pem = KeyPem(client_key.get());
  return !out->ca_pem.empty() && !out->server_cert_pem.empty() && !out->server_key_pem.empty() &&
         !out->client_cert_pem.empty() && !out->client_key_pem.empty();
}

std::string BoringErrors() {
  std::string s;
  while (uint32_t e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    s += buf;
    s += "; ";
  }
  return s;
}

// ---------------------------------------------------------------------------------------------------------------------
// BoringSSL client and server, TLS 1.3 only, mutual authentication.

struct BoringSide {
  bssl::UniquePtr<SSL_CTX> ctx;
  bssl::UniquePtr<X509> own_cert;
  bssl::UniquePtr<X509> expected_peer;
};

bool MakeBoringSide(const Pki& pki, bool server, BoringSide* side, std::string* err) {
  side->ctx.reset(SSL_CTX_new(TLS_method()));
  SSL_CTX* ctx = side->ctx.get();
  side->own_cert = CertFromPem(server ? pki.server_cert_pem : pki.client_cert_pem);
  side->expected_peer = CertFromPem(server ? pki.client_cert_pem : pki.server_cert_pem);
  auto key = KeyFromPem(server ? pki.server_key_pem : pki.client_key_pem);
  auto ca = CertFromPem(pki.ca_pem);
  if (!ctx || !side->own_cert || !side->expected_peer || !key || !ca) {
    *err = "BoringSSL setup (PEM parsing): " + BoringErrors();
    return false;
  }
  // SSL_CTX_set_strict_cipher_list exists only in BoringSSL (and rejects unknown names, unlike OpenSSL's lenient
  // SSL_CTX_set_cipher_list): a BoringSSL-only API working on this context is itself a binding check.
  if (!SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION) || !SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION) ||
      !SSL_CTX_set_strict_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256") ||
      !SSL_CTX_set1_curves_list(ctx, "X25519:P-256") || !SSL_CTX_use_certificate(ctx, side->own_cert.get()) ||
      !SSL_CTX_use_PrivateKey(ctx, key.get()) || !SSL_CTX_check_private_key(ctx) ||
      !X509_STORE_add_cert(SSL_CTX_get_cert_store(ctx), ca.get())) {
    *err = "BoringSSL context setup: " + BoringErrors();
    return false;
  }
  if (SSL_CTX_set_strict_cipher_list(ctx, "ECDHE-ECDSA-AES128-GCM-SHA256:NO-SUCH-CIPHER") != 0) {
    *err = "SSL_CTX_set_strict_cipher_list accepted an unknown cipher: not BoringSSL's implementation";
    return false;
  }
  ERR_clear_error();
  SSL_CTX_set_verify(ctx, server ? SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT : SSL_VERIFY_PEER, nullptr);
  return true;
}

// Checks the state after a completed handshake; returns an empty string on success.
std::string CheckHandshake(SSL* ssl, const BoringSide& side, const char* who) {
  std::string w = who;
  if (SSL_version(ssl) != TLS1_3_VERSION) return w + ": negotiated version " + SSL_get_version(ssl) + ", want TLSv1.3";
  if (SSL_get_verify_result(ssl) != X509_V_OK)
    return w + ": peer verification result " + X509_verify_cert_error_string(SSL_get_verify_result(ssl));
  bssl::UniquePtr<X509> peer(SSL_get_peer_certificate(ssl));
  if (!peer) return w + ": no peer certificate";
  if (X509_cmp(peer.get(), side.expected_peer.get()) != 0) return w + ": unexpected peer certificate";
  return {};
}

bool SetTimeouts(int fd) {
  timeval tv{5, 0};  // a stuck peer becomes a failure, not a hang
  return setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv)) == 0 &&
         setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)) == 0;
}

bool ReadFull(SSL* ssl, char* buf, int n) {
  int got = 0;
  while (got < n) {
    int r = SSL_read(ssl, buf + got, n - got);
    if (r <= 0) return false;
    got += r;
  }
  return true;
}

// Server side of one connection: handshake, then echo until the client's close_notify.
std::string ServeOne(const BoringSide& side, int fd) {
  bssl::UniquePtr<SSL> ssl(SSL_new(side.ctx.get()));
  if (!ssl || !SSL_set_fd(ssl.get(), fd)) return "server: SSL_new/SSL_set_fd failed";
  if (SSL_accept(ssl.get()) != 1) return "server: handshake failed: " + BoringErrors();
  if (std::string e = CheckHandshake(ssl.get(), side, "server"); !e.empty()) return e;
  char buf[256];
  for (;;) {
    int r = SSL_read(ssl.get(), buf, sizeof(buf));
    if (r == 0 && SSL_get_error(ssl.get(), r) == SSL_ERROR_ZERO_RETURN) break;
    if (r <= 0) return "server: read failed: " + BoringErrors();
    if (SSL_write(ssl.get(), buf, r) != r) return "server: write failed: " + BoringErrors();
  }
  SSL_shutdown(ssl.get());
  return {};
}

constexpr int kEchoRoundTrips = 3;

// One full BoringSSL connection over a socketpair: server in its own thread, client in the calling one.
std::string BoringConnection(const BoringSide& server, const BoringSide& client, int iteration) {
  int fds[2];
  if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, fds) != 0) return "socketpair failed";
  if (!SetTimeouts(fds[0]) || !SetTimeouts(fds[1])) {
    close(fds[0]);
    close(fds[1]);
    return "setsockopt failed";
  }
  std::string server_err;
  std::thread server_thread([&] { server_err = ServeOne(server, fds[1]); });
  std::string err;
  {
    bssl::UniquePtr<SSL> ssl(SSL_new(client.ctx.get()));
    if (!ssl || !SSL_set_fd(ssl.get(), fds[0]) || !SSL_set_tlsext_host_name(ssl.get(), kServerName) ||
        !X509_VERIFY_PARAM_set1_host(SSL_get0_param(ssl.get()), kServerName, strlen(kServerName))) {
      err = "client: setup failed";
    } else if (SSL_connect(ssl.get()) != 1) {
      err = "client: handshake failed: " + BoringErrors();
    } else {
      err = CheckHandshake(ssl.get(), client, "client");
      for (int k = 0; err.empty() && k < kEchoRoundTrips; ++k) {
        std::string msg = "boring-ping-" + std::to_string(iteration) + "-" + std::to_string(k);
        std::string back(msg.size(), '\0');
        if (SSL_write(ssl.get(), msg.data(), static_cast<int>(msg.size())) != static_cast<int>(msg.size()) ||
            !ReadFull(ssl.get(), back.data(), static_cast<int>(back.size()))) {
          err = "client: echo I/O failed: " + BoringErrors();
        } else if (back != msg) {
          err = "client: echo mismatch: '" + back + "' != '" + msg + "'";
        }
      }
      SSL_shutdown(ssl.get());  // sends close_notify: ends the server's echo loop
    }
  }
  // Wakes the server if the client failed before close_notify (read returns 0 -> error, not a hang).
  shutdown(fds[0], SHUT_RDWR);
  server_thread.join();
  close(fds[0]);
  close(fds[1]);
  if (err.empty()) err = server_err;
  ERR_clear_error();  // the error queue is thread-local; keep it clean for the next iteration
  return err;
}

// ---------------------------------------------------------------------------------------------------------------------
// gRPC Echo service (OpenSSL 3 underneath grpc::SslServerCredentials / grpc::SslCredentials).

class EchoService final : public zeromesh::test::coexist::Echo::Service {
 public:
  grpc::Status Echo(grpc::ServerContext* context, const zeromesh::test::coexist::EchoRequest* request,
                    zeromesh::test::coexist::EchoReply* reply) override {
    auto auth = context->auth_context();
    if (!auth || !auth->IsPeerAuthenticated()) {
      return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "peer not authenticated");
    }
    auto cns = auth->FindPropertyValues("x509_common_name");
    if (cns.size() != 1) return grpc::Status(grpc::StatusCode::UNAUTHENTICATED, "no single peer common name");
    {
      std::lock_guard<std::mutex> lock(mu_);
      peers_.insert(context->peer());
    }
    reply->set_message(request->message());
    reply->set_peer_common_name(std::string(cns[0].data(), cns[0].size()));
    return grpc::Status::OK;
  }

  std::set<std::string> Peers() {
    std::lock_guard<std::mutex> lock(mu_);
    return peers_;
  }

 private:
  std::mutex mu_;
  std::set<std::string> peers_;  // distinct client connections ("ipv4:127.0.0.1:<port>")
};

std::string SymbolLibrary(const void* addr) {
  Dl_info info{};
  if (addr == nullptr || dladdr(addr, &info) == 0 || info.dli_fname == nullptr) return {};
  return info.dli_fname;
}

bool EndsWithSoname(const std::string& path, const std::string& soname) {
  auto slash = path.rfind('/');
  return path.substr(slash == std::string::npos ? 0 : slash + 1) == soname;
}

// Reads the running executable's version needs (.gnu.version_r), as "file:version" (e.g. "libc.so.6:GLIBC_2.34").
// Every symbol the executable imports from a versioned library shows up here, so an import from OpenSSL 3 (whose
// symbols are all versioned OPENSSL_3.0.0) cannot hide: this catches a partly wrong binding, which is what a wrong
// link order produces (some BoringSSL functions resolve to the .a, others silently to libssl.so.3/libcrypto.so.3).
bool ExecutableVersionNeeds(std::vector<std::string>* out, std::string* err) {
  std::ifstream f("/proc/self/exe", std::ios::binary);
  auto read_at = [&](uint64_t off, void* dst, uint64_t n) {
    f.seekg(static_cast<std::streamoff>(off));
    return static_cast<bool>(f.read(static_cast<char*>(dst), static_cast<std::streamsize>(n)));
  };
  Elf64_Ehdr eh{};
  if (!f || !read_at(0, &eh, sizeof(eh)) || memcmp(eh.e_ident, ELFMAG, SELFMAG) != 0 ||
      eh.e_ident[EI_CLASS] != ELFCLASS64 || eh.e_shentsize != sizeof(Elf64_Shdr)) {
    *err = "cannot read /proc/self/exe as a 64-bit ELF file";
    return false;
  }
  std::vector<Elf64_Shdr> sh(eh.e_shnum);
  if (!read_at(eh.e_shoff, sh.data(), sh.size() * sizeof(Elf64_Shdr))) {
    *err = "cannot read section headers";
    return false;
  }
  for (const Elf64_Shdr& s : sh) {
    if (s.sh_type != SHT_GNU_verneed) continue;
    if (s.sh_link >= sh.size()) break;
    std::string sec(s.sh_size, '\0'), str(sh[s.sh_link].sh_size, '\0');
    if (!read_at(s.sh_offset, sec.data(), sec.size()) || !read_at(sh[s.sh_link].sh_offset, str.data(), str.size())) {
      break;
    }
    auto name_at = [&](uint64_t off) { return off < str.size() ? std::string(str.c_str() + off) : std::string(); };
    uint64_t off = 0;
    for (uint32_t i = 0; i < s.sh_info && off + sizeof(Elf64_Verneed) <= sec.size(); ++i) {
      Elf64_Verneed vn;
      memcpy(&vn, sec.data() + off, sizeof(vn));
      uint64_t aux = off + vn.vn_aux;
      for (uint32_t j = 0; j < vn.vn_cnt && aux + sizeof(Elf64_Vernaux) <= sec.size(); ++j) {
        Elf64_Vernaux va;
        memcpy(&va, sec.data() + aux, sizeof(va));
        out->push_back(name_at(vn.vn_file) + ":" + name_at(va.vna_name));
        if (va.vna_next == 0) break;
        aux += va.vna_next;
      }
      if (vn.vn_next == 0) break;
      off += vn.vn_next;
    }
    return true;
  }
  *err = "no readable .gnu.version_r section";
  return false;
}

// Empty if the executable imports nothing from OpenSSL 3; otherwise what it imports.
std::string OpenSslImports() {
  std::vector<std::string> needs;
  std::string err;
  if (!ExecutableVersionNeeds(&needs, &err)) return err;
  bool saw_libc = false;
  std::string bad;
  for (const std::string& n : needs) {
    saw_libc = saw_libc || n.rfind("libc.so.6:GLIBC_", 0) == 0;
    if (n.rfind("libssl", 0) == 0 || n.rfind("libcrypto", 0) == 0 || n.find(":OPENSSL_") != std::string::npos) {
      bad += n + " ";
    }
  }
  if (!saw_libc) return "version needs parsed wrongly: no libc.so.6:GLIBC_* entry";  // the parser itself works
  if (!bad.empty()) return "the executable imports OpenSSL 3 symbols (" + bad + "): check the link order";
  return {};
}

// ---------------------------------------------------------------------------------------------------------------------

TEST(TlsCoexist, SymbolBinding) {
  // Nothing of our executable binds to OpenSSL 3 (readelf -V shows no libssl.so.3 / libcrypto.so.3 need).
  ASSERT_EQ(OpenSslImports(), "");

  // This binary uses gRPC, so OpenSSL 3 is loaded (gRPC's libgrpc.so needs libssl.so.3 / libcrypto.so.3).
  grpc::SslCredentialsOptions opts;
  ASSERT_NE(grpc::SslCredentials(opts), nullptr);

  // Our calls bind to BoringSSL: its OpenSSL_version(OPENSSL_VERSION) is the fixed string "BoringSSL".
  // (With OpenSSL's libssl/libcrypto ahead of BoringSSL on the link line they bind to OpenSSL 3 instead, and the
  // process crashes as soon as BoringSSL-only code meets an OpenSSL object; so stop here if this fails.)
  ASSERT_STREQ(OpenSSL_version(OPENSSL_VERSION), "BoringSSL") << "our calls bind to OpenSSL: check the link order";

  // The dynamic symbol table's OpenSSL_version / SSL_CTX_new / X509_new are OpenSSL 3's (from gRPC's dependencies)
  // and are NOT our statically linked ones: BoringSSL's symbols are hidden, so OpenSSL's library cannot bind to
  // them and we do not bind to OpenSSL's.
  struct Sym {
    const char* name;
    const void* ours;
    const char* soname;
  };
  const Sym syms[] = {
      {"OpenSSL_version", reinterpret_cast<const void*>(&OpenSSL_version), "libcrypto.so.3"},
      {"X509_new", reinterpret_cast<const void*>(&X509_new), "libcrypto.so.3"},
      {"SSL_CTX_new", reinterpret_cast<const void*>(&SSL_CTX_new), "libssl.so.3"},
      {"SSL_do_handshake", reinterpret_cast<const void*>(&SSL_do_handshake), "libssl.so.3"},
  };
  for (const Sym& s : syms) {
    SCOPED_TRACE(s.name);
    void* dyn = dlsym(RTLD_DEFAULT, s.name);
    ASSERT_NE(dyn, nullptr) << "OpenSSL 3 not loaded?";
    EXPECT_NE(dyn, s.ours) << "the dynamic symbol resolves to our BoringSSL copy: BoringSSL is not hidden";
    EXPECT_TRUE(EndsWithSoname(SymbolLibrary(dyn), s.soname)) << "dynamic symbol comes from " << SymbolLibrary(dyn);
    std::string ours_lib = SymbolLibrary(s.ours);
    EXPECT_EQ(ours_lib.find("libssl"), std::string::npos) << "our symbol lives in " << ours_lib;
    EXPECT_EQ(ours_lib.find("libcrypto"), std::string::npos) << "our symbol lives in " << ours_lib;
  }

  // Calling OpenSSL 3 through the dynamic table gives OpenSSL's version, a different implementation.
  using VersionFn = const char* (*)(int);
  auto openssl_version = reinterpret_cast<VersionFn>(dlsym(RTLD_DEFAULT, "OpenSSL_version"));
  ASSERT_NE(openssl_version, nullptr);
  EXPECT_EQ(std::string(openssl_version(0 /* OpenSSL 3's OPENSSL_VERSION */)).rfind("OpenSSL 3.", 0), 0u)
      << openssl_version(0);

  // BoringSSL-only functions are not in the dynamic symbol table at all (they would be with a shared BoringSSL or a
  // non-hidden static one), yet they work when called directly.
  for (const char* name : {"SSL_CTX_set_strict_cipher_list", "CRYPTO_BUFFER_new", "BORINGSSL_self_test"}) {
    EXPECT_EQ(dlsym(RTLD_DEFAULT, name), nullptr) << name << " is exported";
  }
  ASSERT_FALSE(HasFailure()) << "symbol binding is wrong: calling BoringSSL-only functions now could crash";
  bssl::UniquePtr<SSL_CTX> ctx(SSL_CTX_new(TLS_method()));
  ASSERT_NE(ctx, nullptr);
  EXPECT_EQ(SSL_CTX_set_strict_cipher_list(ctx.get(), "ECDHE-ECDSA-AES128-GCM-SHA256"), 1);
  EXPECT_EQ(SSL_CTX_set_strict_cipher_list(ctx.get(), "NO-SUCH-CIPHER"), 0);
  ERR_clear_error();
}

TEST(TlsCoexist, ConcurrentHandshakes) {
  ASSERT_EQ(OpenSslImports(), "") << "mixed BoringSSL/OpenSSL binding would crash this test";
  signal(SIGPIPE, SIG_IGN);  // a failed peer must surface as an error, not kill the test

  Pki pki;
  ASSERT_TRUE(MakePki(&pki)) << BoringErrors();

  // gRPC server: mTLS, client certificate required and verified against our CA.
  EchoService service;
  grpc::SslServerCredentialsOptions server_opts(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  server_opts.pem_root_certs = pki.ca_pem;
  server_opts.pem_key_cert_pairs.push_back({pki.server_key_pem, pki.server_cert_pem});
  int port = 0;
  grpc::ServerBuilder builder;
  builder.AddListeningPort("127.0.0.1:0", grpc::SslServerCredentials(server_opts), &port);
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  ASSERT_NE(server, nullptr);
  ASSERT_GT(port, 0);

  // BoringSSL workers: handshakes + echo round trips until the gRPC phase is over (and at least kMinIterations).
  BoringSide boring_server, boring_client;
  std::string setup_err;
  ASSERT_TRUE(MakeBoringSide(pki, /*server=*/true, &boring_server, &setup_err)) << setup_err;
  ASSERT_TRUE(MakeBoringSide(pki, /*server=*/false, &boring_client, &setup_err)) << setup_err;

  constexpr int kWorkers = 2;
  constexpr int kMinIterations = 50;
  constexpr int kMaxIterations = 5000;  // bound in case the gRPC phase stalls
  std::atomic<bool> grpc_done{false};
  std::atomic<int> handshakes_ok{0};
  std::atomic<int> failures{0};
  std::mutex err_mu;
  std::string first_err;
  std::vector<std::thread> workers;
  for (int w = 0; w < kWorkers; ++w) {
    workers.emplace_back([&, w] {
      for (int i = 0; i < kMaxIterations && (i < kMinIterations || !grpc_done.load()); ++i) {
        std::string e = BoringConnection(boring_server, boring_client, w * kMaxIterations + i);
        if (e.empty()) {
          handshakes_ok.fetch_add(1);
        } else {
          failures.fetch_add(1);
          std::lock_guard<std::mutex> lock(err_mu);
          if (first_err.empty()) first_err = e;
        }
      }
    });
  }

  // Start the gRPC phase only once BoringSSL traffic is flowing, so the two really overlap.
  auto wait_until = std::chrono::steady_clock::now() + 10s;
  while (handshakes_ok.load() + failures.load() == 0 && std::chrono::steady_clock::now() < wait_until) {
    std::this_thread::sleep_for(1ms);
  }
  const int boring_before = handshakes_ok.load();

  // Main thread: many channels (each its own TLS connection, hence its own OpenSSL handshake), a few calls each.
  constexpr int kChannels = 32;
  constexpr int kCallsPerChannel = 8;
  int grpc_ok = 0;
  grpc::SslCredentialsOptions client_opts;
  client_opts.pem_root_certs = pki.ca_pem;
  client_opts.pem_private_key = pki.client_key_pem;
  client_opts.pem_cert_chain = pki.client_cert_pem;
  auto creds = grpc::SslCredentials(client_opts);
  for (int c = 0; c < kChannels; ++c) {
    grpc::ChannelArguments args;
    args.SetSslTargetNameOverride(kServerName);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // no connection sharing between channels
    auto channel = grpc::CreateCustomChannel("127.0.0.1:" + std::to_string(port), creds, args);
    auto stub = zeromesh::test::coexist::Echo::NewStub(channel);
    for (int k = 0; k < kCallsPerChannel; ++k) {
      grpc::ClientContext ctx;
      ctx.set_deadline(std::chrono::system_clock::now() + 5s);
      zeromesh::test::coexist::EchoRequest req;
      zeromesh::test::coexist::EchoReply reply;
      req.set_message("grpc-ping-" + std::to_string(c) + "-" + std::to_string(k));
      grpc::Status st = stub->Echo(&ctx, req, &reply);
      EXPECT_TRUE(st.ok()) << "channel " << c << " call " << k << ": " << st.error_code() << " " << st.error_message();
      if (!st.ok()) continue;
      EXPECT_EQ(reply.message(), req.message());
      EXPECT_EQ(reply.peer_common_name(), kClientCn);  // the server authenticated our client certificate
      auto auth = ctx.auth_context();
      ASSERT_NE(auth, nullptr);
      EXPECT_TRUE(auth->IsPeerAuthenticated());
      auto cns = auth->FindPropertyValues("x509_common_name");
      ASSERT_EQ(cns.size(), 1u);
      EXPECT_EQ(std::string(cns[0].data(), cns[0].size()), kServerCn);
      ++grpc_ok;
    }
  }
  const int boring_during = handshakes_ok.load() - boring_before;
  grpc_done.store(true);
  for (auto& t : workers) t.join();
  server->Shutdown(std::chrono::system_clock::now() + 2s);

  EXPECT_EQ(grpc_ok, kChannels * kCallsPerChannel);
  EXPECT_EQ(service.Peers().size(), static_cast<size_t>(kChannels)) << "each channel should be its own connection";
  EXPECT_EQ(failures.load(), 0) << "first BoringSSL failure: " << first_err;
  EXPECT_GE(handshakes_ok.load(), kWorkers * kMinIterations);
  EXPECT_GT(boring_during, 0) << "no BoringSSL handshake completed while gRPC was running: no overlap";
  std::printf(
      "tls_coexist: %d gRPC calls over %d OpenSSL connections; %d BoringSSL TLS 1.3 handshakes (%d during the "
      "gRPC phase)\n",
      grpc_ok, kChannels, handshakes_ok.load(), boring_during);
}

}  // namespace
