/*
 * lh_zstd: zstd block compression into and out of the caller's buffers (Node-API addon, loaded by
 * src/codec/zstd-native.ts). node:zlib's zstdCompressSync/zstdDecompressSync build a new stream
 * object and a new zstd context for every call and return a new buffer: in the lab a gateway
 * spent ~3.5x the codec's own time per 256 KiB block on that (context set-up, fresh memory faulted
 * in, the garbage collections the buffers start; bench/results/datapath-2026-12-06.md §15). Here
 * one compression and one decompression context per thread live as long as the addon, and
 * decompression writes into a buffer the caller reuses.
 *
 * JS API (src/codec/zstd-native.ts types it):
 *   compress(src, dst, level) -> bytes written to dst, or -1 when they would not fit in dst
 *       One zstd frame without checksum and without the content size (the block header carries it),
 *       as node:zlib writes it with the parameters src/codec/codecs.ts sets.
 *   decompress(src, dst) -> bytes written to dst; -2 when src's content would not fit in dst, -1
 *       when src is not one valid zstd frame (peer input: never more than dst.length bytes are
 *       written).
 * Misuse (wrong types) throws.
 *
 * libzstd's symbols resolve from the node binary at load time (Node bundles libzstd for node:zlib
 * and exports it), so this links against nothing and needs no zstd headers: the few functions and
 * parameter numbers used are declared here, from zstd.h's stable API.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <node_api.h>

typedef struct ZSTD_CCtx_s ZSTD_CCtx;
typedef struct ZSTD_DCtx_s ZSTD_DCtx;
extern ZSTD_CCtx *ZSTD_createCCtx(void);
extern size_t ZSTD_freeCCtx(ZSTD_CCtx *cctx);
extern ZSTD_DCtx *ZSTD_createDCtx(void);
extern size_t ZSTD_freeDCtx(ZSTD_DCtx *dctx);
extern size_t ZSTD_CCtx_setParameter(ZSTD_CCtx *cctx, int param, int value);
extern size_t ZSTD_compress2(ZSTD_CCtx *cctx, void *dst, size_t dstCapacity, const void *src, size_t srcSize);
extern size_t ZSTD_decompressDCtx(ZSTD_DCtx *dctx, void *dst, size_t dstCapacity, const void *src, size_t srcSize);
extern unsigned ZSTD_isError(size_t code);
extern int ZSTD_getErrorCode(size_t code);
#define ZSTD_error_dstSize_tooSmall 70 /* zstd_errors.h's ZSTD_ErrorCode (stable) */

/* zstd.h's ZSTD_cParameter values (stable API). */
#define ZSTD_c_compressionLevel 100
#define ZSTD_c_contentSizeFlag 200
#define ZSTD_c_checksumFlag 201

typedef struct {
  ZSTD_CCtx *cctx;
  ZSTD_DCtx *dctx;
  int level; /* the level cctx is set to; INT32_MIN before the first compress */
} contexts;

static void free_contexts(napi_env env, void *data, void *hint) {
  (void)env;
  (void)hint;
  contexts *c = data;
  if (c->cctx) ZSTD_freeCCtx(c->cctx);
  if (c->dctx) ZSTD_freeDCtx(c->dctx);
  free(c);
}

static napi_value throw_type(napi_env env, const char *msg) {
  napi_throw_type_error(env, NULL, msg);
  return NULL;
}

static int bytes_arg(napi_env env, napi_value v, uint8_t **data, size_t *len) {
  napi_typedarray_type type;
  void *base = NULL;
  size_t length = 0;
  bool is_typed = false;
  if (napi_is_typedarray(env, v, &is_typed) != napi_ok || !is_typed) return 0;
  if (napi_get_typedarray_info(env, v, &type, &length, &base, NULL, NULL) != napi_ok || type != napi_uint8_array) return 0;
  *data = base;
  *len = length;
  return 1;
}

static napi_value number(napi_env env, double v) {
  napi_value out;
  napi_create_double(env, v, &out);
  return out;
}

/* A call's `want` arguments into argv, the first two being src and dst (Uint8Arrays); 0 if not. */
static int src_dst_args(napi_env env, napi_callback_info info, size_t want, napi_value *argv, uint8_t **src, size_t *src_len,
                        uint8_t **dst, size_t *dst_len) {
  size_t argc = want;
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < want) return 0;
  return bytes_arg(env, argv[0], src, src_len) && bytes_arg(env, argv[1], dst, dst_len);
}

static contexts *get_contexts(napi_env env) {
  contexts *c = NULL;
  napi_get_instance_data(env, (void **)&c);
  return c;
}

/* compress(src: Uint8Array, dst: Uint8Array, level: number) */
static napi_value js_compress(napi_env env, napi_callback_info info) {
  napi_value argv[3];
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  int32_t level;
  if (!src_dst_args(env, info, 3, argv, &src, &src_len, &dst, &dst_len) || napi_get_value_int32(env, argv[2], &level) != napi_ok)
    return throw_type(env, "compress(src: Uint8Array, dst: Uint8Array, level: number)");
  contexts *c = get_contexts(env);
  if (c->cctx == NULL) {
    c->cctx = ZSTD_createCCtx();
    if (c->cctx == NULL) return throw_type(env, "compress: out of memory for the zstd context");
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_checksumFlag, 0);
    ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_contentSizeFlag, 0);
  }
  if (level != c->level) {
    if (ZSTD_isError(ZSTD_CCtx_setParameter(c->cctx, ZSTD_c_compressionLevel, level))) return throw_type(env, "compress: level out of range");
    c->level = level;
  }
  /* A one-shot compress2 resets the session itself; an error (dst too small) leaves nothing behind. */
  size_t n = ZSTD_compress2(c->cctx, dst, dst_len, src, src_len);
  return number(env, ZSTD_isError(n) ? -1 : (double)n);
}

/* decompress(src: Uint8Array, dst: Uint8Array) */
static napi_value js_decompress(napi_env env, napi_callback_info info) {
  napi_value argv[2];
  uint8_t *src, *dst;
  size_t src_len, dst_len;
  if (!src_dst_args(env, info, 2, argv, &src, &src_len, &dst, &dst_len))
    return throw_type(env, "decompress(src: Uint8Array, dst: Uint8Array)");
  contexts *c = get_contexts(env);
  if (c->dctx == NULL) {
    c->dctx = ZSTD_createDCtx();
    if (c->dctx == NULL) return throw_type(env, "decompress: out of memory for the zstd context");
  }
  size_t n = ZSTD_decompressDCtx(c->dctx, dst, dst_len, src, src_len);
  if (ZSTD_isError(n)) return number(env, ZSTD_getErrorCode(n) == ZSTD_error_dstSize_tooSmall ? -2 : -1);
  return number(env, (double)n);
}

NAPI_MODULE_INIT() {
  contexts *c = calloc(1, sizeof *c);
  if (c == NULL) return NULL;
  c->level = INT32_MIN;
  if (napi_set_instance_data(env, c, free_contexts, NULL) != napi_ok) {
    free(c);
    return NULL;
  }
  napi_property_descriptor props[] = {
    {"compress", NULL, js_compress, NULL, NULL, NULL, napi_default, NULL},
    {"decompress", NULL, js_decompress, NULL, NULL, NULL, napi_default, NULL},
  };
  napi_define_properties(env, exports, sizeof props / sizeof props[0], props);
  return exports;
}
