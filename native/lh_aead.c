/*
 * The per-packet AEAD, AES-256-GCM (the default) or ChaCha20-Poly1305 (RFC 8439, the IETF variant
 * with a 96-bit nonce), through OpenSSL's EVP interface. One EVP_CIPHER_CTX per key is initialised
 * once with the key; a packet then costs a nonce reset, the cipher pass and the tag, without the
 * per-call context setup that makes node:crypto's createCipheriv cost ~12 us per packet. Seal of a
 * 1400-byte packet on the gateways' AMD EPYC (AES-NI, VAES, VPCLMULQDQ): AES-256-GCM ~0.25 us,
 * ChaCha20-Poly1305 ~0.95 us (AVX-512), sodium-native's ChaCha20-Poly1305 ~1.7 us
 * (bench/results/crypto-2026-11-26.md).
 *
 * The nonce is Noise's: 4 zero bytes, then the 64-bit packet counter, little-endian for
 * ChaChaPoly (as WireGuard) and big-endian for AESGCM (Noise spec sections 12.3 and 12.4).
 * ChaCha20-Poly1305 output is byte-identical to libsodium's crypto_aead_chacha20poly1305_ietf_encrypt,
 * AES-256-GCM output to node:crypto's aes-256-gcm (test/crypto/aead-backend.test.ts checks both).
 *
 * JS API (src/crypto/aead-openssl.ts types it):
 *   create(key: Uint8Array(32), cipherId = 0) -> external   0 ChaCha20-Poly1305, 1 AES-256-GCM;
 *                                                    the key is copied into OpenSSL's context only
 *   seal(ctx, counter, buf, headerLen, plaintext, at = 0) -> packet bytes used
 *       The packet starts at buf[at] (a sender writes straight into its send queue, no view
 *       or copy per packet). AAD = packet[0, headerLen); ciphertext -> packet[headerLen, +n);
 *       tag (16) after it. plaintext may be packet[headerLen, ...) itself (sealing in place).
 *   open(ctx, counter, packet, headerLen, out | null) -> plaintext length, or -1 (bad tag/short)
 *       AAD = packet[0, headerLen); ciphertext = packet[headerLen, length - 16); tag = last 16.
 *       out null: decrypted in place over the ciphertext. On failure the output bytes are zeroed.
 *   sealRun(ctx, buf, lens, from, count, at, word0, word1, firstCounter) -> count
 *       Seals `count` packets laid back to back in buf from byte `at`, packet i being
 *       lens[from + i] bytes: a 16-byte header, the plaintext, 16 bytes of room for the tag. Writes
 *       each header as word0 and word1 (u32 LE) then the packet's counter (u64 LE), counter =
 *       firstCounter + i, and seals the plaintext in place (AAD = the header). One call per run of
 *       a send queue instead of one per packet: the per-call cost (~0.08 us) is a third of the
 *       seal itself on 1400-byte packets.
 *   openRun(ctx, buf, ats, lens, counters, count, headerLen, results, out?, outAts?) -> count
 *       open() for `count` packets of buf, packet k at buf[ats[k], +lens[k]) under counters[k]
 *       (Float64Array), in place or, with out, into out[outAts[k]] (out must not overlap the
 *       packets); results[k] = its plaintext length, or -1. A receive batch's run in one call.
 *   free(ctx)                                        wipes and frees now (the GC finalizer otherwise)
 *   version: string                                  the OpenSSL that runs it
 * Misuse (wrong types, a freed context, an output too small) throws: those are caller bugs, while
 * anything a network packet can cause returns -1.
 *
 * OpenSSL and Node-API symbols resolve from the node binary at load time (it exports both), so
 * this links against neither; the headers come from libssl-dev and node-api-headers.
 */
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <node_api.h>
#include <openssl/crypto.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/params.h>

#define KEY_LEN 32
#define NONCE_LEN 12
#define TAG_LEN 16
/* sealRun's header: two u32 words (the data message's type and receiver index) and the u64 counter. */
#define DATA_HEADER_LEN 16
/* Guards against an external made by some other addon being passed in as ours. */
#define CTX_MAGIC 0x6c68616561643031ULL /* "lhaead01" */
/* Counters above 2^53 are not exact JS numbers; the packet path stops at 2^48. */
#define MAX_COUNTER ((int64_t)1 << 53)

/* Cipher ids of create()'s second argument (src/crypto/aead-openssl.ts names them). */
#define CIPHER_CHACHA20_POLY1305 0
#define CIPHER_AES_256_GCM 1

typedef struct {
  uint64_t magic;
  EVP_CIPHER_CTX *evp; /* NULL once freed */
  /* Noise's AESGCM nonce puts the counter big-endian, ChaChaPoly's little-endian (spec 12.3, 12.4). */
  bool counter_big_endian;
} aead_ctx;

static void wipe_ctx(aead_ctx *c) {
  /* EVP_CIPHER_CTX_free cleanses the key schedule and Poly1305 state before freeing. */
  if (c->evp != NULL) EVP_CIPHER_CTX_free(c->evp);
  c->evp = NULL;
}

static void finalize_ctx(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  aead_ctx *c = data;
  wipe_ctx(c);
  c->magic = 0;
  free(c);
}

#define CHECK(call)                                                   \
  do {                                                                \
    if ((call) != napi_ok) return throw_last(env, #call);             \
  } while (0)

static napi_value throw_last(napi_env env, const char *what) {
  bool pending = false;
  napi_is_exception_pending(env, &pending);
  if (!pending) napi_throw_error(env, "ERR_LH_AEAD", what);
  return NULL;
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, "ERR_LH_AEAD", msg);
  return NULL;
}

static napi_value throw_range(napi_env env, const char *msg) {
  napi_throw_range_error(env, "ERR_LH_AEAD", msg);
  return NULL;
}

/* Uint8Array (Buffers included) -> pointer + length; false after throwing. */
static bool get_bytes(napi_env env, napi_value v, uint8_t **data, size_t *len, const char *name) {
  napi_typedarray_type type;
  void *p = NULL;
  if (napi_get_typedarray_info(env, v, &type, len, &p, NULL, NULL) != napi_ok || type != napi_uint8_array) {
    throw_type(env, name);
    return false;
  }
  *data = p;
  return true;
}

/* A typed array of `want` type -> pointer + element count; false after throwing. */
static bool get_typed(napi_env env, napi_value v, napi_typedarray_type want, void **data, size_t *count, const char *name) {
  napi_typedarray_type type;
  if (napi_get_typedarray_info(env, v, &type, count, data, NULL, NULL) != napi_ok || type != want) {
    throw_type(env, name);
    return false;
  }
  return true;
}

static aead_ctx *get_ctx(napi_env env, napi_value v) {
  void *p = NULL;
  if (napi_get_value_external(env, v, &p) != napi_ok || p == NULL || ((aead_ctx *)p)->magic != CTX_MAGIC) {
    throw_type(env, "ctx: not an lh_aead context");
    return NULL;
  }
  aead_ctx *c = p;
  if (c->evp == NULL) {
    napi_throw_error(env, "ERR_LH_AEAD", "ctx: used after free");
    return NULL;
  }
  return c;
}

/* The arguments sealRun and openRun share: ctx, then the buffer the run lies in. False after throwing. */
static bool get_run_args(napi_env env, napi_value *argv, aead_ctx **c, uint8_t **buf, size_t *buf_len) {
  *c = get_ctx(env, argv[0]);
  return *c != NULL && get_bytes(env, argv[1], buf, buf_len, "buf: a Uint8Array");
}

static void make_nonce(const aead_ctx *c, uint64_t counter, uint8_t nonce[NONCE_LEN]) {
  memset(nonce, 0, 4);
  for (int i = 0; i < 8; i++) nonce[c->counter_big_endian ? 11 - i : 4 + i] = (uint8_t)(counter >> (8 * i));
}

/* AAD = packet[0, header_len); ciphertext of plain -> packet[header_len, +plain_len); tag after it. */
static bool seal_one(EVP_CIPHER_CTX *e, const uint8_t nonce[NONCE_LEN], uint8_t *packet, size_t header_len,
                     const uint8_t *plain, size_t plain_len) {
  uint8_t *ct = packet + header_len;
  int n = 0;
  uint8_t final_out[TAG_LEN]; /* ChaCha20's and GCM's Final write nothing; never hand them a NULL */
  /* The tag through the provider's parameters directly: EVP_CIPHER_CTX_ctrl would build them per call. */
  OSSL_PARAM tag_param[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, ct + plain_len, TAG_LEN),
                             OSSL_PARAM_construct_end()};
  bool ok = EVP_EncryptInit_ex2(e, NULL, NULL, nonce, NULL) == 1;
  if (ok && header_len > 0) ok = EVP_EncryptUpdate(e, NULL, &n, packet, (int)header_len) == 1;
  if (ok && plain_len > 0) ok = EVP_EncryptUpdate(e, ct, &n, plain, (int)plain_len) == 1 && (size_t)n == plain_len;
  if (ok) ok = EVP_EncryptFinal_ex(e, final_out, &n) == 1 && n == 0;
  if (ok) ok = EVP_CIPHER_CTX_get_params(e, tag_param) == 1;
  return ok;
}

/*
 * AAD = packet[0, header_len); ciphertext = packet[header_len, +ct_len); tag after it. Plaintext ->
 * out (may be the ciphertext itself). False when the tag does not verify: out is zeroed then.
 */
static bool open_one(EVP_CIPHER_CTX *e, const uint8_t nonce[NONCE_LEN], const uint8_t *packet, size_t header_len,
                     size_t ct_len, uint8_t *out) {
  const uint8_t *ct = packet + header_len;
  /* OpenSSL keeps its own copy of the expected tag, so decrypting in place cannot clobber it. */
  uint8_t tag[TAG_LEN];
  memcpy(tag, ct + ct_len, TAG_LEN);
  int n = 0;
  uint8_t final_out[TAG_LEN];
  /* The expected tag goes in with the nonce: one call into the provider instead of two. */
  OSSL_PARAM tag_param[2] = {OSSL_PARAM_construct_octet_string(OSSL_CIPHER_PARAM_AEAD_TAG, tag, TAG_LEN),
                             OSSL_PARAM_construct_end()};
  bool ok = EVP_DecryptInit_ex2(e, NULL, NULL, nonce, tag_param) == 1;
  if (ok && header_len > 0) ok = EVP_DecryptUpdate(e, NULL, &n, packet, (int)header_len) == 1;
  if (ok && ct_len > 0) ok = EVP_DecryptUpdate(e, out, &n, ct, (int)ct_len) == 1 && (size_t)n == ct_len;
  /* Final compares the tags (in constant time); a mismatch is the packet's fault, not a bug. */
  if (ok) ok = EVP_DecryptFinal_ex(e, final_out, &n) == 1 && n == 0;
  /* Never leave unauthenticated plaintext behind (libsodium zeroes it too). */
  if (!ok) OPENSSL_cleanse(out, ct_len);
  return ok;
}

static bool get_nonce(napi_env env, const aead_ctx *c, napi_value v, uint8_t nonce[NONCE_LEN]) {
  int64_t counter;
  if (napi_get_value_int64(env, v, &counter) != napi_ok || counter < 0 || counter >= MAX_COUNTER) {
    throw_range(env, "counter: an integer in [0, 2^53)");
    return false;
  }
  make_nonce(c, (uint64_t)counter, nonce);
  return true;
}

static bool get_header_len(napi_env env, napi_value v, size_t packet_len, size_t *header_len) {
  uint32_t h;
  if (napi_get_value_uint32(env, v, &h) != napi_ok || h > packet_len) {
    throw_range(env, "headerLen: at most the packet's length");
    return false;
  }
  *header_len = h;
  return true;
}

/* [a, a+alen) and [b, b+blen) share bytes without starting at the same address. */
static bool partial_overlap(const uint8_t *a, size_t alen, const uint8_t *b, size_t blen) {
  if (a == b || alen == 0 || blen == 0) return false;
  return a < b + blen && b < a + alen;
}

static napi_value int_result(napi_env env, int64_t v) {
  napi_value r;
  CHECK(napi_create_int64(env, v, &r));
  return r;
}

static napi_value js_create(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 1) return throw_type(env, "create(key, cipherId?)");
  uint8_t *key;
  size_t key_len;
  if (!get_bytes(env, argv[0], &key, &key_len, "key: a Uint8Array")) return NULL;
  if (key_len != KEY_LEN) return throw_range(env, "key: 32 bytes");
  uint32_t cipher_id = CIPHER_CHACHA20_POLY1305;
  if (argc >= 2) {
    napi_valuetype t;
    CHECK(napi_typeof(env, argv[1], &t));
    if (t != napi_undefined && napi_get_value_uint32(env, argv[1], &cipher_id) != napi_ok) return throw_type(env, "cipherId: 0 or 1");
  }
  const EVP_CIPHER *cipher;
  if (cipher_id == CIPHER_CHACHA20_POLY1305) cipher = EVP_chacha20_poly1305();
  else if (cipher_id == CIPHER_AES_256_GCM) cipher = EVP_aes_256_gcm();
  else return throw_range(env, "cipherId: 0 (chacha20-poly1305) or 1 (aes-256-gcm)");

  aead_ctx *c = calloc(1, sizeof *c);
  if (c == NULL) return throw_last(env, "out of memory");
  c->magic = CTX_MAGIC;
  c->counter_big_endian = cipher_id == CIPHER_AES_256_GCM;
  c->evp = EVP_CIPHER_CTX_new();
  uint8_t zero_nonce[NONCE_LEN] = {0};
  /* Both ciphers default to a 96-bit IV and a 16-byte tag, so no ctrl calls are needed. */
  if (c->evp == NULL || EVP_CipherInit_ex(c->evp, cipher, NULL, key, zero_nonce, 1) != 1) {
    wipe_ctx(c);
    free(c);
    return throw_last(env, "OpenSSL: AEAD context setup failed");
  }
  napi_value ext;
  if (napi_create_external(env, c, finalize_ctx, NULL, &ext) != napi_ok) {
    wipe_ctx(c);
    free(c);
    return throw_last(env, "napi_create_external");
  }
  return ext;
}

static napi_value js_free(napi_env env, napi_callback_info info) {
  size_t argc = 1;
  napi_value argv[1];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  void *p = NULL;
  if (argc < 1 || napi_get_value_external(env, argv[0], &p) != napi_ok || p == NULL || ((aead_ctx *)p)->magic != CTX_MAGIC)
    return throw_type(env, "ctx: not an lh_aead context");
  wipe_ctx(p); /* idempotent; the struct itself goes with the finalizer */
  return NULL;
}

/*
 * The arguments seal and open share: ctx, counter (made into the nonce), the packet and its header
 * length. With `at` (seal's optional offset, NULL or undefined for none) the packet starts at
 * buf[at]. False after throwing.
 */
static bool get_packet_args(napi_env env, napi_value *argv, napi_value at, aead_ctx **c, uint8_t nonce[NONCE_LEN],
                            uint8_t **packet, size_t *packet_len, size_t *header_len) {
  *c = get_ctx(env, argv[0]);
  if (*c == NULL || !get_nonce(env, *c, argv[1], nonce)) return false;
  if (!get_bytes(env, argv[2], packet, packet_len, "packet: a Uint8Array")) return false;
  if (at != NULL) {
    napi_valuetype t;
    if (napi_typeof(env, at, &t) != napi_ok) {
      throw_last(env, "napi_typeof");
      return false;
    }
    if (t != napi_undefined) {
      uint32_t offset;
      if (napi_get_value_uint32(env, at, &offset) != napi_ok || offset > *packet_len) {
        throw_range(env, "at: an offset within buf");
        return false;
      }
      *packet += offset;
      *packet_len -= offset;
    }
  }
  return get_header_len(env, argv[3], *packet_len, header_len);
}

static napi_value js_seal(napi_env env, napi_callback_info info) {
  size_t argc = 6;
  napi_value argv[6];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "seal(ctx, counter, buf, headerLen, plaintext, at?)");
  aead_ctx *c;
  uint8_t nonce[NONCE_LEN];
  uint8_t *packet, *plain;
  size_t packet_len, plain_len, header_len;
  if (!get_packet_args(env, argv, argc >= 6 ? argv[5] : NULL, &c, nonce, &packet, &packet_len, &header_len)) return NULL;
  if (!get_bytes(env, argv[4], &plain, &plain_len, "plaintext: a Uint8Array")) return NULL;
  if (plain_len > (size_t)INT_MAX - TAG_LEN || packet_len - header_len < plain_len + TAG_LEN)
    return throw_range(env, "packet: too small for header + plaintext + tag");
  uint8_t *ct = packet + header_len;
  if (partial_overlap(ct, plain_len + TAG_LEN, plain, plain_len) || partial_overlap(packet, header_len, plain, plain_len))
    return throw_range(env, "plaintext: overlaps the packet other than exactly in place");

  if (!seal_one(c->evp, nonce, packet, header_len, plain, plain_len)) return throw_last(env, "OpenSSL: AEAD encryption failed");
  return int_result(env, (int64_t)(header_len + plain_len + TAG_LEN));
}

static void put_u32_le(uint8_t *p, uint32_t v) {
  for (int i = 0; i < 4; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static napi_value js_seal_run(napi_env env, napi_callback_info info) {
  size_t argc = 9;
  napi_value argv[9];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 9) return throw_type(env, "sealRun(ctx, buf, lens, from, count, at, word0, word1, firstCounter)");
  aead_ctx *c;
  uint8_t *buf;
  size_t buf_len;
  if (!get_run_args(env, argv, &c, &buf, &buf_len)) return NULL;
  size_t lens_count;
  const int32_t *lens;
  if (!get_typed(env, argv[2], napi_int32_array, (void **)&lens, &lens_count, "lens: an Int32Array")) return NULL;
  uint32_t from, count, at, word0, word1;
  int64_t first;
  if (napi_get_value_uint32(env, argv[3], &from) != napi_ok || napi_get_value_uint32(env, argv[4], &count) != napi_ok ||
      napi_get_value_uint32(env, argv[5], &at) != napi_ok || napi_get_value_uint32(env, argv[6], &word0) != napi_ok ||
      napi_get_value_uint32(env, argv[7], &word1) != napi_ok || napi_get_value_int64(env, argv[8], &first) != napi_ok)
    return throw_type(env, "from, count, at, word0, word1, firstCounter: integers");
  if ((size_t)from + count > lens_count) return throw_range(env, "lens: fewer than from + count entries");
  if (first < 0 || first + (int64_t)count > MAX_COUNTER) return throw_range(env, "firstCounter: counters in [0, 2^53)");
  /* Bounds first, so that a bad run seals nothing. */
  size_t end = at;
  for (uint32_t i = 0; i < count; i++) {
    int32_t len = lens[from + i];
    if (len < DATA_HEADER_LEN + TAG_LEN) return throw_range(env, "lens: a packet shorter than header + tag");
    end += (size_t)len;
  }
  if (end > buf_len) return throw_range(env, "buf: the run does not fit");
  uint8_t nonce[NONCE_LEN];
  uint8_t *packet = buf + at;
  for (uint32_t i = 0; i < count; i++) {
    size_t len = (size_t)lens[from + i];
    uint64_t counter = (uint64_t)first + i;
    put_u32_le(packet, word0);
    put_u32_le(packet + 4, word1);
    for (int b = 0; b < 8; b++) packet[8 + b] = (uint8_t)(counter >> (8 * b));
    make_nonce(c, counter, nonce);
    uint8_t *plain = packet + DATA_HEADER_LEN;
    if (!seal_one(c->evp, nonce, packet, DATA_HEADER_LEN, plain, len - DATA_HEADER_LEN - TAG_LEN))
      return throw_last(env, "OpenSSL: AEAD encryption failed");
    packet += len;
  }
  return int_result(env, count);
}

static napi_value js_open(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 5) return throw_type(env, "open(ctx, counter, packet, headerLen, out | null)");
  aead_ctx *c;
  uint8_t nonce[NONCE_LEN];
  uint8_t *packet;
  size_t packet_len, header_len;
  if (!get_packet_args(env, argv, NULL, &c, nonce, &packet, &packet_len, &header_len)) return NULL;
  if (packet_len - header_len < TAG_LEN || packet_len > (size_t)INT_MAX) return int_result(env, -1);
  size_t ct_len = packet_len - header_len - TAG_LEN;
  uint8_t *ct = packet + header_len;
  uint8_t *out = ct;
  napi_valuetype out_type;
  CHECK(napi_typeof(env, argv[4], &out_type));
  if (out_type != napi_null && out_type != napi_undefined) {
    size_t out_len;
    if (!get_bytes(env, argv[4], &out, &out_len, "out: a Uint8Array or null")) return NULL;
    if (out_len < ct_len) return throw_range(env, "out: shorter than the plaintext");
    if (partial_overlap(out, ct_len, ct, ct_len) || partial_overlap(out, ct_len, packet, header_len) ||
        partial_overlap(out, ct_len, ct + ct_len, TAG_LEN))
      return throw_range(env, "out: overlaps the packet other than exactly in place");
  }
  return int_result(env, open_one(c->evp, nonce, packet, header_len, ct_len, out) ? (int64_t)ct_len : -1);
}

static napi_value js_open_run(napi_env env, napi_callback_info info) {
  size_t argc = 10;
  napi_value argv[10];
  CHECK(napi_get_cb_info(env, info, &argc, argv, NULL, NULL));
  if (argc < 8) return throw_type(env, "openRun(ctx, buf, ats, lens, counters, count, headerLen, results, out?, outAts?)");
  aead_ctx *c;
  uint8_t *buf;
  size_t buf_len;
  if (!get_run_args(env, argv, &c, &buf, &buf_len)) return NULL;
  const int32_t *ats, *lens;
  int32_t *results;
  const double *counters;
  size_t ats_n, lens_n, counters_n, results_n;
  if (!get_typed(env, argv[2], napi_int32_array, (void **)&ats, &ats_n, "ats: an Int32Array") ||
      !get_typed(env, argv[3], napi_int32_array, (void **)&lens, &lens_n, "lens: an Int32Array") ||
      !get_typed(env, argv[4], napi_float64_array, (void **)&counters, &counters_n, "counters: a Float64Array") ||
      !get_typed(env, argv[7], napi_int32_array, (void **)&results, &results_n, "results: an Int32Array"))
    return NULL;
  uint32_t count, header_len;
  if (napi_get_value_uint32(env, argv[5], &count) != napi_ok || napi_get_value_uint32(env, argv[6], &header_len) != napi_ok)
    return throw_type(env, "count, headerLen: integers");
  if (count > ats_n || count > lens_n || count > counters_n || count > results_n) return throw_range(env, "count: more than the arrays hold");
  /* With out: plaintext k goes to out[outAts[k]] (the packets stay as they are). */
  uint8_t *out = NULL;
  size_t out_len = 0, out_ats_n = 0;
  const int32_t *out_ats = NULL;
  napi_valuetype out_type = napi_undefined;
  if (argc >= 10) CHECK(napi_typeof(env, argv[8], &out_type));
  if (out_type != napi_undefined && out_type != napi_null) {
    if (!get_bytes(env, argv[8], &out, &out_len, "out: a Uint8Array") ||
        !get_typed(env, argv[9], napi_int32_array, (void **)&out_ats, &out_ats_n, "outAts: an Int32Array"))
      return NULL;
    if (count > out_ats_n) return throw_range(env, "count: more than outAts holds");
  }
  /* Bounds first, so that a bad run opens nothing. */
  for (uint32_t k = 0; k < count; k++) {
    double ctr = counters[k];
    if (ats[k] < 0 || lens[k] < 0 || (size_t)ats[k] + (size_t)lens[k] > buf_len) return throw_range(env, "ats, lens: a packet outside buf");
    if (!(ctr >= 0 && ctr < (double)MAX_COUNTER) || ctr != (double)(int64_t)ctr) return throw_range(env, "counters: integers in [0, 2^53)");
    if (out != NULL && lens[k] >= (int64_t)header_len + TAG_LEN &&
        (out_ats[k] < 0 || (size_t)out_ats[k] + ((size_t)lens[k] - header_len - TAG_LEN) > out_len))
      return throw_range(env, "outAts: a plaintext outside out");
  }
  uint8_t nonce[NONCE_LEN];
  for (uint32_t k = 0; k < count; k++) {
    uint8_t *packet = buf + ats[k];
    size_t len = (size_t)lens[k];
    if (len < header_len + TAG_LEN) {
      results[k] = -1;
      continue;
    }
    size_t ct_len = len - header_len - TAG_LEN;
    make_nonce(c, (uint64_t)counters[k], nonce);
    uint8_t *dst = out != NULL ? out + out_ats[k] : packet + header_len;
    results[k] = open_one(c->evp, nonce, packet, header_len, ct_len, dst) ? (int32_t)ct_len : -1;
  }
  return int_result(env, count);
}

NAPI_MODULE_INIT(/* napi_env env, napi_value exports */) {
  napi_property_descriptor props[] = {
    {"create", NULL, js_create, NULL, NULL, NULL, napi_enumerable, NULL},
    {"seal", NULL, js_seal, NULL, NULL, NULL, napi_enumerable, NULL},
    {"open", NULL, js_open, NULL, NULL, NULL, napi_enumerable, NULL},
    {"sealRun", NULL, js_seal_run, NULL, NULL, NULL, napi_enumerable, NULL},
    {"openRun", NULL, js_open_run, NULL, NULL, NULL, napi_enumerable, NULL},
    {"free", NULL, js_free, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  if (napi_define_properties(env, exports, sizeof props / sizeof props[0], props) != napi_ok) return NULL;
  napi_value version;
  if (napi_create_string_utf8(env, OpenSSL_version(OPENSSL_VERSION), NAPI_AUTO_LENGTH, &version) != napi_ok ||
      napi_set_named_property(env, exports, "version", version) != napi_ok)
    return NULL;
  return exports;
}
