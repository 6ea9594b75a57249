/*
 * seald's PKCS#11 SM2 TEST token: a software PKCS#11 module over files in a directory, the
 * way SoftHSM is one, for the one thing SoftHSM lacks: SM2 through a VENDOR-DEFINED
 * mechanism. FOR TESTS ONLY: private keys are unencrypted PEM files.
 *
 * It behaves as the "sansec-hsm" profile of seald/tokens/pkcs11_sm2.py says a SANSEC HSM
 * does (values from the xipki PKCS#11 wrapper's vendor.conf): keys of type
 * CKK_VENDOR_SM2 = 0x80000004, signing with CKM_SM2_SIGN = 0x80008104 over the 32-byte
 * prepared digest e = SM3(Z || M) (GM/T 0009; the caller computes Z), answering raw r||s
 * (64 bytes).
 *
 *   $P11_SM2_TEST_TOKEN_DIR/<token>/              a token ("present" while the dir exists)
 *   $P11_SM2_TEST_TOKEN_DIR/<token>/user.pin      "sm3hex max remaining" (SM3 of "<token>:<PIN>")
 *   $P11_SM2_TEST_TOKEN_DIR/<token>/keys/<idhex>.key    SM2 key, generated here, never exported
 *   $P11_SM2_TEST_TOKEN_DIR/<token>/keys/<idhex>.label  the key's CKA_LABEL
 *   $P11_SM2_TEST_TOKEN_DIR/<token>/keys/<idhex>.cer    its certificate (DER), C_CreateObject
 *
 * Slots: one per token directory; the slot id is a hash of the directory name, so it stays
 * the same while other tokens come and go. A session whose token directory disappears (or
 * was replaced: another inode) answers CKR_DEVICE_REMOVED for good, like a pulled token.
 *
 * Key generation: CKM_EC_KEY_PAIR_GEN with CKA_EC_PARAMS = the SM2 curve OID
 * (1.2.156.10197.1.301); the vendor key-generation mechanisms are not documented in the
 * material the profiles come from, so the test token takes the standard EC one.
 *
 * Every CK_FUNCTION_LIST entry this token does not implement returns
 * CKR_FUNCTION_NOT_SUPPORTED (one function, cast to each entry's type: on the SysV x86-64
 * and AArch64 ABIs a call through it ignores the arguments and returns the value).
 */
#define _GNU_SOURCE
#include <p11-kit/pkcs11.h>

#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_NAME 32
#define MAX_TOKENS 32
#define MAX_SESSIONS 64
#define MAX_OBJECTS 1024
#define MAX_FOUND 256
#define MAX_ID 32 /* bytes of CKA_ID */
#define MAX_CERT 16384
#define PIN_MIN 6
#define PIN_MAX 16

#define CKK_VENDOR_SM2 0x80000004UL
#define CKM_VENDOR_SM2_SIGN 0x80008104UL
/* DER of OID 1.2.156.10197.1.301 (the SM2 curve) */
static const unsigned char SM2_OID_DER[] = {0x06, 0x08, 0x2A, 0x81, 0x1C, 0xCF, 0x55, 0x01, 0x82, 0x2D};

enum kind { O_PRIV = 1, O_PUB, O_CERT };

struct object {
    int used;
    int kind;
    char token[MAX_NAME + 1];
    char idhex[2 * MAX_ID + 1];
};

struct session {
    int used;
    char token[MAX_NAME + 1];
    ino_t ino;
    CK_SLOT_ID slot;
    CK_FLAGS flags;
    int dead;
    CK_OBJECT_HANDLE found[MAX_FOUND];
    int nfound, pos, finding;
    CK_OBJECT_HANDLE sign_key; /* 0: no signing operation */
};

struct login {
    char token[MAX_NAME + 1];
    ino_t ino;
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static int g_initialized;
static struct session g_sessions[MAX_SESSIONS + 1]; /* index = handle, 0 unused */
static struct object g_objects[MAX_OBJECTS + 1];    /* index = handle, 0 unused */
static struct login g_logins[MAX_TOKENS];           /* tokens the user is logged in to */

/* ---------------------------------------------------------------- files and names */

static const char *root_dir(void) {
    const char *r = getenv("P11_SM2_TEST_TOKEN_DIR");
    return (r && *r && strlen(r) < PATH_MAX - 4 * (MAX_NAME + 2 * MAX_ID + 16)) ? r : NULL;
}

static int valid_name(const char *s) {
    size_t n = s ? strlen(s) : 0;
    if (n == 0 || n > MAX_NAME || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static int cmp_names(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

static int list_tokens(char names[][MAX_NAME + 1], int max) {
    DIR *d;
    struct dirent *e;
    struct stat st;
    char p[PATH_MAX];
    int n = 0;
    if (!root_dir() || !(d = opendir(root_dir()))) return 0;
    while ((e = readdir(d)) != NULL && n < max) {
        if (!valid_name(e->d_name)) continue;
        snprintf(p, sizeof p, "%s/%s", root_dir(), e->d_name);
        if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        snprintf(names[n++], MAX_NAME + 1, "%s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, MAX_NAME + 1, cmp_names);
    return n;
}

/* FNV-1a of the name: a slot id that does not move when other tokens come and go. */
static CK_SLOT_ID slot_of(const char *name) {
    uint32_t h = 2166136261u;
    for (const char *p = name; *p; p++) h = (h ^ (unsigned char)*p) * 16777619u;
    return (CK_SLOT_ID)(h & 0x7FFFFFFFu);
}

static int token_of_slot(CK_SLOT_ID slot, char out[MAX_NAME + 1]) {
    char names[MAX_TOKENS][MAX_NAME + 1];
    int n = list_tokens(names, MAX_TOKENS);
    for (int i = 0; i < n; i++)
        if (slot_of(names[i]) == slot) {
            snprintf(out, MAX_NAME + 1, "%s", names[i]);
            return 0;
        }
    return -1;
}

static void token_path(const char *token, const char *rest, char out[PATH_MAX]) {
    snprintf(out, PATH_MAX, "%s/%s%s%s", root_dir() ? root_dir() : "/nonexistent", token, rest ? "/" : "",
             rest ? rest : "");
}

static int token_ino(const char *token, ino_t *ino) {
    struct stat st;
    char p[PATH_MAX];
    token_path(token, NULL, p);
    if (!root_dir() || stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) return -1;
    *ino = st.st_ino;
    return 0;
}

static int write_file_atomic(const char *path, const void *data, size_t len, mode_t mode) {
    char tmp[PATH_MAX];
    int fd;
    snprintf(tmp, sizeof tmp, "%s.tmp", path);
    fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, mode);
    if (fd < 0) return -1;
    if (write(fd, data, len) != (ssize_t)len || fsync(fd) != 0) {
        close(fd);
        unlink(tmp);
        return -1;
    }
    close(fd);
    return rename(tmp, path);
}

/* Reads at most max bytes of a file; -1 when it is missing. */
static long read_file(const char *path, unsigned char *buf, size_t max) {
    FILE *f = fopen(path, "rb");
    if (!f) return -1;
    size_t n = fread(buf, 1, max, f);
    fclose(f);
    return (long)n;
}

static void pad(CK_UTF8CHAR *dst, size_t len, const char *src) {
    size_t n = strlen(src);
    memset(dst, ' ', len);
    memcpy(dst, src, n < len ? n : len);
}

/* ---------------------------------------------------------------- PIN file */

struct pin_state {
    char hash[65];
    unsigned max, remaining;
};

static void pin_hash(const char *token, const char *pin, size_t pinlen, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    /* salted with the token name so two tokens with one PIN differ on disk */
    EVP_DigestInit_ex(c, EVP_sm3(), NULL);
    EVP_DigestUpdate(c, token, strlen(token));
    EVP_DigestUpdate(c, ":", 1);
    EVP_DigestUpdate(c, pin, pinlen);
    EVP_DigestFinal_ex(c, md, &len);
    EVP_MD_CTX_free(c);
    for (unsigned i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", md[i]);
    out[64] = 0;
}

static int read_pin(const char *token, struct pin_state *ps) {
    char p[PATH_MAX];
    FILE *f;
    token_path(token, "user.pin", p);
    if (!(f = fopen(p, "r"))) return -1;
    int ok = fscanf(f, "%64s %u %u", ps->hash, &ps->max, &ps->remaining) == 3;
    fclose(f);
    return ok && ps->max > 0 ? 0 : -1;
}

static int write_pin(const char *token, const struct pin_state *ps) {
    char p[PATH_MAX], buf[128];
    int n = snprintf(buf, sizeof buf, "%s %u %u\n", ps->hash, ps->max, ps->remaining);
    token_path(token, "user.pin", p);
    return write_file_atomic(p, buf, (size_t)n, 0600);
}

/* ---------------------------------------------------------------- login state */

static int logged_in(const char *token, ino_t ino) {
    for (int i = 0; i < MAX_TOKENS; i++)
        if (g_logins[i].token[0] && strcmp(g_logins[i].token, token) == 0 && g_logins[i].ino == ino) return 1;
    return 0;
}

static void set_login(const char *token, ino_t ino, int on) {
    for (int i = 0; i < MAX_TOKENS; i++)
        if (g_logins[i].token[0] && strcmp(g_logins[i].token, token) == 0) g_logins[i].token[0] = 0;
    if (!on) return;
    for (int i = 0; i < MAX_TOKENS; i++)
        if (!g_logins[i].token[0]) {
            snprintf(g_logins[i].token, sizeof g_logins[i].token, "%s", token);
            g_logins[i].ino = ino;
            return;
        }
}

/* ---------------------------------------------------------------- sessions */

/* The session, if valid and its token still present; *rv says why not. Caller holds g_lock. */
static struct session *get_session(CK_SESSION_HANDLE h, CK_RV *rv) {
    ino_t ino;
    if (!g_initialized) {
        *rv = CKR_CRYPTOKI_NOT_INITIALIZED;
        return NULL;
    }
    if (h == 0 || h > MAX_SESSIONS || !g_sessions[h].used) {
        *rv = CKR_SESSION_HANDLE_INVALID;
        return NULL;
    }
    struct session *s = &g_sessions[h];
    if (s->dead || token_ino(s->token, &ino) != 0 || ino != s->ino) {
        s->dead = 1;
        set_login(s->token, s->ino, 0);
        *rv = CKR_DEVICE_REMOVED;
        return NULL;
    }
    *rv = CKR_OK;
    return s;
}

/* ---------------------------------------------------------------- objects */

static CK_OBJECT_HANDLE object_handle(const char *token, const char *idhex, int kind) {
    int free_slot = 0;
    for (int i = 1; i <= MAX_OBJECTS; i++) {
        struct object *o = &g_objects[i];
        if (o->used && o->kind == kind && strcmp(o->token, token) == 0 && strcmp(o->idhex, idhex) == 0)
            return (CK_OBJECT_HANDLE)i;
        if (!o->used && !free_slot) free_slot = i;
    }
    if (!free_slot) return 0;
    struct object *o = &g_objects[free_slot];
    o->used = 1;
    o->kind = kind;
    snprintf(o->token, sizeof o->token, "%s", token);
    snprintf(o->idhex, sizeof o->idhex, "%s", idhex);
    return (CK_OBJECT_HANDLE)free_slot;
}

static int valid_idhex(const char *s, size_t n) {
    if (n == 0 || n > 2 * MAX_ID || n % 2) return 0;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f'))) return 0;
    return 1;
}

static void key_file(const struct object *o, const char *ext, char out[PATH_MAX]) {
    char rest[PATH_MAX];
    snprintf(rest, sizeof rest, "keys/%s.%s", o->idhex, ext);
    token_path(o->token, rest, out);
}

static EVP_PKEY *load_key(const struct object *o) {
    char p[PATH_MAX];
    FILE *f;
    EVP_PKEY *k;
    key_file(o, "key", p);
    if (!(f = fopen(p, "r"))) return NULL;
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return k;
}

static int object_exists(const struct object *o) {
    char p[PATH_MAX];
    struct stat st;
    key_file(o, o->kind == O_CERT ? "cer" : "key", p);
    return stat(p, &st) == 0;
}

/*
 * The value of one attribute of an object into buf (at most max bytes). Returns the length,
 * -1 for an attribute the object does not have, -2 for a sensitive one.
 */
static long attr_value(const struct object *o, CK_ATTRIBUTE_TYPE t, unsigned char *buf, size_t max) {
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_ULONG u;
    char p[PATH_MAX];
    long n;
#define PUT(ptr, len)                          \
    do {                                       \
        if ((size_t)(len) > max) return -3;    \
        memcpy(buf, (ptr), (size_t)(len));     \
        return (long)(len);                    \
    } while (0)
    switch (t) {
    case CKA_CLASS:
        u = o->kind == O_PRIV ? CKO_PRIVATE_KEY : o->kind == O_PUB ? CKO_PUBLIC_KEY : CKO_CERTIFICATE;
        PUT(&u, sizeof u);
    case CKA_TOKEN:
        PUT(&yes, 1);
    case CKA_PRIVATE:
        PUT(o->kind == O_PRIV ? &yes : &no, 1);
    case CKA_MODIFIABLE:
        PUT(&no, 1);
    case CKA_ID: {
        unsigned char id[MAX_ID];
        size_t l = strlen(o->idhex) / 2;
        for (size_t i = 0; i < l; i++) {
            unsigned v;
            sscanf(o->idhex + 2 * i, "%2x", &v);
            id[i] = (unsigned char)v;
        }
        PUT(id, l);
    }
    case CKA_LABEL: {
        struct object key = *o;
        key.kind = O_PRIV;
        key_file(&key, "label", p);
        n = read_file(p, buf, max);
        return n < 0 ? 0 : n; /* no label file: empty label */
    }
    default:
        break;
    }
    if (o->kind == O_CERT) {
        switch (t) {
        case CKA_CERTIFICATE_TYPE:
            u = CKC_X_509;
            PUT(&u, sizeof u);
        case CKA_VALUE:
            key_file(o, "cer", p);
            n = read_file(p, buf, max);
            return n < 0 ? -1 : n;
        default:
            return -1;
        }
    }
    switch (t) {
    case CKA_KEY_TYPE:
        u = CKK_VENDOR_SM2;
        PUT(&u, sizeof u);
    case CKA_LOCAL:
        PUT(&yes, 1);
    case CKA_EC_PARAMS:
        PUT(SM2_OID_DER, sizeof SM2_OID_DER);
    default:
        break;
    }
    if (o->kind == O_PRIV) {
        switch (t) {
        case CKA_SIGN:
        case CKA_SENSITIVE:
        case CKA_ALWAYS_SENSITIVE:
        case CKA_NEVER_EXTRACTABLE:
            PUT(&yes, 1);
        case CKA_EXTRACTABLE:
        case CKA_DECRYPT:
        case CKA_UNWRAP:
        case CKA_DERIVE:
            PUT(&no, 1);
        case CKA_VALUE:
            return -2; /* generated inside, never exported */
        default:
            return -1;
        }
    }
    switch (t) { /* public key */
    case CKA_VERIFY:
        PUT(&yes, 1);
    case CKA_ENCRYPT:
    case CKA_WRAP:
        PUT(&no, 1);
    case CKA_EC_POINT: {
        unsigned char pt[67];
        size_t len = 0;
        EVP_PKEY *k = load_key(o);
        int ok = k && EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt + 2, 65, &len) &&
                 len == 65;
        EVP_PKEY_free(k);
        if (!ok) return -1;
        pt[0] = 0x04; /* DER OCTET STRING around the uncompressed point, as PKCS#11 says */
        pt[1] = 65;
        PUT(pt, 67);
    }
    default:
        return -1;
    }
#undef PUT
}

static int visible(const struct session *s, const struct object *o) {
    return o->kind != O_PRIV || logged_in(s->token, s->ino);
}

/* ---------------------------------------------------------------- general */

static CK_FUNCTION_LIST g_functions;

EXPORT CK_RV C_Initialize(CK_VOID_PTR pInitArgs) {
    CK_C_INITIALIZE_ARGS *a = pInitArgs;
    if (a && a->pReserved) return CKR_ARGUMENTS_BAD;
    /* with its own pthread mutex the module is safe with or without CKF_OS_LOCKING_OK; it does
       not use application-supplied mutex functions */
    pthread_mutex_lock(&g_lock);
    CK_RV rv = g_initialized ? CKR_CRYPTOKI_ALREADY_INITIALIZED : CKR_OK;
    g_initialized = 1;
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT CK_RV C_Finalize(CK_VOID_PTR pReserved) {
    if (pReserved) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_lock);
    CK_RV rv = g_initialized ? CKR_OK : CKR_CRYPTOKI_NOT_INITIALIZED;
    g_initialized = 0;
    memset(g_sessions, 0, sizeof g_sessions);
    memset(g_objects, 0, sizeof g_objects);
    memset(g_logins, 0, sizeof g_logins);
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT CK_RV C_GetInfo(CK_INFO_PTR pInfo) {
    if (!g_initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!pInfo) return CKR_ARGUMENTS_BAD;
    memset(pInfo, 0, sizeof *pInfo);
    pInfo->cryptokiVersion.major = 2;
    pInfo->cryptokiVersion.minor = 40;
    pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "seald test");
    pad(pInfo->libraryDescription, sizeof pInfo->libraryDescription, "seald PKCS#11 SM2 test token");
    pInfo->libraryVersion.major = 1;
    return CKR_OK;
}

EXPORT CK_RV C_GetFunctionList(CK_FUNCTION_LIST_PTR_PTR ppFunctionList) {
    if (!ppFunctionList) return CKR_ARGUMENTS_BAD;
    *ppFunctionList = &g_functions;
    return CKR_OK;
}

/* ---------------------------------------------------------------- slots and tokens */

EXPORT CK_RV C_GetSlotList(CK_BBOOL tokenPresent, CK_SLOT_ID_PTR pSlotList, CK_ULONG_PTR pulCount) {
    char names[MAX_TOKENS][MAX_NAME + 1];
    (void)tokenPresent; /* a slot exists exactly while its token does */
    if (!g_initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!pulCount) return CKR_ARGUMENTS_BAD;
    int n = list_tokens(names, MAX_TOKENS);
    if (!pSlotList) {
        *pulCount = (CK_ULONG)n;
        return CKR_OK;
    }
    if (*pulCount < (CK_ULONG)n) {
        *pulCount = (CK_ULONG)n;
        return CKR_BUFFER_TOO_SMALL;
    }
    for (int i = 0; i < n; i++) pSlotList[i] = slot_of(names[i]);
    *pulCount = (CK_ULONG)n;
    return CKR_OK;
}

EXPORT CK_RV C_GetSlotInfo(CK_SLOT_ID slotID, CK_SLOT_INFO_PTR pInfo) {
    char token[MAX_NAME + 1], desc[64];
    if (!g_initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!pInfo) return CKR_ARGUMENTS_BAD;
    if (token_of_slot(slotID, token) != 0) return CKR_SLOT_ID_INVALID;
    memset(pInfo, 0, sizeof *pInfo);
    snprintf(desc, sizeof desc, "seald SM2 test slot %s", token);
    pad(pInfo->slotDescription, sizeof pInfo->slotDescription, desc);
    pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "seald test");
    pInfo->flags = CKF_TOKEN_PRESENT | CKF_REMOVABLE_DEVICE;
    return CKR_OK;
}

EXPORT CK_RV C_GetTokenInfo(CK_SLOT_ID slotID, CK_TOKEN_INFO_PTR pInfo) {
    char token[MAX_NAME + 1];
    struct pin_state ps;
    ino_t ino;
    if (!g_initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!pInfo) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_lock);
    if (token_of_slot(slotID, token) != 0 || token_ino(token, &ino) != 0) {
        pthread_mutex_unlock(&g_lock);
        return CKR_SLOT_ID_INVALID;
    }
    memset(pInfo, 0, sizeof *pInfo);
    pad(pInfo->label, sizeof pInfo->label, token);
    pad(pInfo->manufacturerID, sizeof pInfo->manufacturerID, "seald test");
    pad(pInfo->model, sizeof pInfo->model, "sansec-hsm test");
    pad(pInfo->serialNumber, sizeof pInfo->serialNumber, token);
    pInfo->flags = CKF_TOKEN_INITIALIZED | CKF_LOGIN_REQUIRED;
    if (read_pin(token, &ps) == 0) {
        pInfo->flags |= CKF_USER_PIN_INITIALIZED;
        if (ps.remaining == 0) pInfo->flags |= CKF_USER_PIN_LOCKED;
        else if (ps.remaining == 1) pInfo->flags |= CKF_USER_PIN_FINAL_TRY;
        if (ps.remaining < ps.max) pInfo->flags |= CKF_USER_PIN_COUNT_LOW;
    }
    int nsess = 0, nrw = 0;
    for (int i = 1; i <= MAX_SESSIONS; i++)
        if (g_sessions[i].used && g_sessions[i].slot == slotID) {
            nsess++;
            nrw += (g_sessions[i].flags & CKF_RW_SESSION) != 0;
        }
    pthread_mutex_unlock(&g_lock);
    pInfo->ulMaxSessionCount = MAX_SESSIONS;
    pInfo->ulSessionCount = (CK_ULONG)nsess;
    pInfo->ulMaxRwSessionCount = MAX_SESSIONS;
    pInfo->ulRwSessionCount = (CK_ULONG)nrw;
    pInfo->ulMaxPinLen = PIN_MAX;
    pInfo->ulMinPinLen = PIN_MIN;
    pInfo->ulTotalPublicMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulFreePublicMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulTotalPrivateMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->ulFreePrivateMemory = CK_UNAVAILABLE_INFORMATION;
    pInfo->hardwareVersion.major = 1;
    pInfo->firmwareVersion.major = 1;
    memset(pInfo->utcTime, ' ', sizeof pInfo->utcTime);
    return CKR_OK;
}

static const CK_MECHANISM_TYPE MECHANISMS[] = {CKM_EC_KEY_PAIR_GEN, CKM_VENDOR_SM2_SIGN};

EXPORT CK_RV C_GetMechanismList(CK_SLOT_ID slotID, CK_MECHANISM_TYPE_PTR pList, CK_ULONG_PTR pulCount) {
    char token[MAX_NAME + 1];
    const CK_ULONG n = sizeof MECHANISMS / sizeof MECHANISMS[0];
    if (!g_initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!pulCount) return CKR_ARGUMENTS_BAD;
    if (token_of_slot(slotID, token) != 0) return CKR_SLOT_ID_INVALID;
    if (!pList) {
        *pulCount = n;
        return CKR_OK;
    }
    if (*pulCount < n) {
        *pulCount = n;
        return CKR_BUFFER_TOO_SMALL;
    }
    memcpy(pList, MECHANISMS, sizeof MECHANISMS);
    *pulCount = n;
    return CKR_OK;
}

EXPORT CK_RV C_GetMechanismInfo(CK_SLOT_ID slotID, CK_MECHANISM_TYPE type, CK_MECHANISM_INFO_PTR pInfo) {
    char token[MAX_NAME + 1];
    if (!g_initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!pInfo) return CKR_ARGUMENTS_BAD;
    if (token_of_slot(slotID, token) != 0) return CKR_SLOT_ID_INVALID;
    memset(pInfo, 0, sizeof *pInfo);
    pInfo->ulMinKeySize = pInfo->ulMaxKeySize = 256;
    if (type == CKM_EC_KEY_PAIR_GEN) pInfo->flags = CKF_HW | CKF_GENERATE_KEY_PAIR;
    else if (type == CKM_VENDOR_SM2_SIGN) pInfo->flags = CKF_HW | CKF_SIGN;
    else return CKR_MECHANISM_INVALID;
    return CKR_OK;
}

/* ---------------------------------------------------------------- sessions and login */

EXPORT CK_RV C_OpenSession(CK_SLOT_ID slotID, CK_FLAGS flags, CK_VOID_PTR pApplication, CK_NOTIFY Notify,
                           CK_SESSION_HANDLE_PTR phSession) {
    char token[MAX_NAME + 1];
    ino_t ino;
    (void)pApplication;
    (void)Notify;
    if (!g_initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
    if (!phSession) return CKR_ARGUMENTS_BAD;
    if (!(flags & CKF_SERIAL_SESSION)) return CKR_SESSION_PARALLEL_NOT_SUPPORTED;
    pthread_mutex_lock(&g_lock);
    CK_RV rv = CKR_SESSION_COUNT;
    if (token_of_slot(slotID, token) != 0 || token_ino(token, &ino) != 0) rv = CKR_SLOT_ID_INVALID;
    else
        for (int i = 1; i <= MAX_SESSIONS; i++)
            if (!g_sessions[i].used) {
                memset(&g_sessions[i], 0, sizeof g_sessions[i]);
                g_sessions[i].used = 1;
                g_sessions[i].slot = slotID;
                g_sessions[i].flags = flags;
                g_sessions[i].ino = ino;
                snprintf(g_sessions[i].token, sizeof g_sessions[i].token, "%s", token);
                *phSession = (CK_SESSION_HANDLE)i;
                rv = CKR_OK;
                break;
            }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT CK_RV C_CloseSession(CK_SESSION_HANDLE hSession) {
    CK_RV rv = CKR_OK;
    pthread_mutex_lock(&g_lock);
    if (!g_initialized) rv = CKR_CRYPTOKI_NOT_INITIALIZED;
    else if (hSession == 0 || hSession > MAX_SESSIONS || !g_sessions[hSession].used) rv = CKR_SESSION_HANDLE_INVALID;
    else {
        struct session *s = &g_sessions[hSession];
        int others = 0;
        for (int i = 1; i <= MAX_SESSIONS; i++)
            others += i != (int)hSession && g_sessions[i].used && strcmp(g_sessions[i].token, s->token) == 0;
        if (!others) set_login(s->token, s->ino, 0); /* the last session closed logs out (PKCS#11) */
        memset(s, 0, sizeof *s);
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT CK_RV C_CloseAllSessions(CK_SLOT_ID slotID) {
    if (!g_initialized) return CKR_CRYPTOKI_NOT_INITIALIZED;
    pthread_mutex_lock(&g_lock);
    for (int i = 1; i <= MAX_SESSIONS; i++)
        if (g_sessions[i].used && g_sessions[i].slot == slotID) {
            set_login(g_sessions[i].token, g_sessions[i].ino, 0);
            memset(&g_sessions[i], 0, sizeof g_sessions[i]);
        }
    pthread_mutex_unlock(&g_lock);
    return CKR_OK;
}

EXPORT CK_RV C_GetSessionInfo(CK_SESSION_HANDLE hSession, CK_SESSION_INFO_PTR pInfo) {
    CK_RV rv;
    if (!pInfo) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    if (s) {
        int rw = (s->flags & CKF_RW_SESSION) != 0, in = logged_in(s->token, s->ino);
        memset(pInfo, 0, sizeof *pInfo);
        pInfo->slotID = s->slot;
        pInfo->flags = s->flags;
        pInfo->state = in ? (rw ? CKS_RW_USER_FUNCTIONS : CKS_RO_USER_FUNCTIONS)
                          : (rw ? CKS_RW_PUBLIC_SESSION : CKS_RO_PUBLIC_SESSION);
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT CK_RV C_Login(CK_SESSION_HANDLE hSession, CK_USER_TYPE userType, CK_UTF8CHAR_PTR pPin, CK_ULONG ulPinLen) {
    CK_RV rv;
    struct pin_state ps;
    char h[65];
    if (userType != CKU_USER) return CKR_USER_TYPE_INVALID; /* no SO functions in the test token */
    if (!pPin) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    if (!s) goto out;
    if (logged_in(s->token, s->ino)) {
        rv = CKR_USER_ALREADY_LOGGED_IN;
        goto out;
    }
    if (read_pin(s->token, &ps) != 0) {
        rv = CKR_USER_PIN_NOT_INITIALIZED;
        goto out;
    }
    if (ps.remaining == 0) {
        rv = CKR_PIN_LOCKED;
        goto out;
    }
    if (ulPinLen < PIN_MIN || ulPinLen > PIN_MAX) {
        rv = CKR_PIN_LEN_RANGE; /* a PIN that cannot be right does not cost a try */
        goto out;
    }
    pin_hash(s->token, (const char *)pPin, ulPinLen, h);
    if (CRYPTO_memcmp(h, ps.hash, 64) != 0) {
        ps.remaining--;
        rv = write_pin(s->token, &ps) != 0 ? CKR_DEVICE_ERROR : ps.remaining == 0 ? CKR_PIN_LOCKED : CKR_PIN_INCORRECT;
        goto out;
    }
    if (ps.remaining != ps.max) {
        ps.remaining = ps.max;
        if (write_pin(s->token, &ps) != 0) {
            rv = CKR_DEVICE_ERROR;
            goto out;
        }
    }
    set_login(s->token, s->ino, 1);
    rv = CKR_OK;
out:
    pthread_mutex_unlock(&g_lock);
    return rv;
}

/* The user PIN (R/W session): the old PIN is checked like C_Login's, a wrong one costs a try. */
EXPORT CK_RV C_SetPIN(CK_SESSION_HANDLE hSession, CK_UTF8CHAR_PTR pOldPin, CK_ULONG ulOldLen, CK_UTF8CHAR_PTR pNewPin,
                      CK_ULONG ulNewLen) {
    CK_RV rv;
    struct pin_state ps;
    char h[65];
    if (!pOldPin || !pNewPin) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    if (!s) goto out;
    if (!(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    if (read_pin(s->token, &ps) != 0) {
        rv = CKR_USER_PIN_NOT_INITIALIZED;
        goto out;
    }
    if (ps.remaining == 0) {
        rv = CKR_PIN_LOCKED;
        goto out;
    }
    if (ulOldLen < PIN_MIN || ulOldLen > PIN_MAX || ulNewLen < PIN_MIN || ulNewLen > PIN_MAX) {
        rv = CKR_PIN_LEN_RANGE;
        goto out;
    }
    pin_hash(s->token, (const char *)pOldPin, ulOldLen, h);
    if (CRYPTO_memcmp(h, ps.hash, 64) != 0) {
        ps.remaining--;
        rv = write_pin(s->token, &ps) != 0 ? CKR_DEVICE_ERROR : ps.remaining == 0 ? CKR_PIN_LOCKED : CKR_PIN_INCORRECT;
        goto out;
    }
    pin_hash(s->token, (const char *)pNewPin, ulNewLen, ps.hash);
    ps.remaining = ps.max;
    rv = write_pin(s->token, &ps) != 0 ? CKR_DEVICE_ERROR : CKR_OK;
out:
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT CK_RV C_Logout(CK_SESSION_HANDLE hSession) {
    CK_RV rv;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    if (s) {
        if (!logged_in(s->token, s->ino)) rv = CKR_USER_NOT_LOGGED_IN;
        else set_login(s->token, s->ino, 0);
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

/* ---------------------------------------------------------------- objects */

EXPORT CK_RV C_FindObjectsInit(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount) {
    CK_RV rv;
    char p[PATH_MAX];
    unsigned char val[MAX_CERT];
    if (!pTemplate && ulCount) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    if (!s) goto out;
    if (s->finding) {
        rv = CKR_OPERATION_ACTIVE;
        goto out;
    }
    s->nfound = s->pos = 0;
    s->finding = 1;
    token_path(s->token, "keys", p);
    DIR *d = opendir(p);
    struct dirent *e;
    while (d && (e = readdir(d)) != NULL) {
        const char *dot = strrchr(e->d_name, '.');
        if (!dot || strcmp(dot, ".key") != 0 || !valid_idhex(e->d_name, (size_t)(dot - e->d_name))) continue;
        char idhex[2 * MAX_ID + 1];
        snprintf(idhex, sizeof idhex, "%.*s", (int)(dot - e->d_name), e->d_name);
        for (int kind = O_PRIV; kind <= O_CERT; kind++) {
            CK_OBJECT_HANDLE oh = object_handle(s->token, idhex, kind);
            if (!oh) break;
            struct object *o = &g_objects[oh];
            if (!object_exists(o) || !visible(s, o)) continue;
            int match = 1;
            for (CK_ULONG i = 0; i < ulCount && match; i++) {
                long n = attr_value(o, pTemplate[i].type, val, sizeof val);
                match = n >= 0 && (CK_ULONG)n == pTemplate[i].ulValueLen &&
                        (n == 0 || (pTemplate[i].pValue && memcmp(val, pTemplate[i].pValue, (size_t)n) == 0));
            }
            if (match && s->nfound < MAX_FOUND) s->found[s->nfound++] = oh;
        }
    }
    if (d) closedir(d);
out:
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT CK_RV C_FindObjects(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE_PTR phObject, CK_ULONG ulMaxObjectCount,
                           CK_ULONG_PTR pulObjectCount) {
    CK_RV rv;
    if (!phObject || !pulObjectCount) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    if (s && !s->finding) rv = CKR_OPERATION_NOT_INITIALIZED;
    else if (s) {
        CK_ULONG n = 0;
        while (n < ulMaxObjectCount && s->pos < s->nfound) phObject[n++] = s->found[s->pos++];
        *pulObjectCount = n;
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT CK_RV C_FindObjectsFinal(CK_SESSION_HANDLE hSession) {
    CK_RV rv;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    if (s && !s->finding) rv = CKR_OPERATION_NOT_INITIALIZED;
    else if (s) s->finding = 0;
    pthread_mutex_unlock(&g_lock);
    return rv;
}

/* The object behind a handle, if it exists on the session's token and the session may see it. */
static struct object *get_object(struct session *s, CK_OBJECT_HANDLE h) {
    if (h == 0 || h > MAX_OBJECTS || !g_objects[h].used) return NULL;
    struct object *o = &g_objects[h];
    if (strcmp(o->token, s->token) != 0 || !object_exists(o) || !visible(s, o)) return NULL;
    return o;
}

EXPORT CK_RV C_GetAttributeValue(CK_SESSION_HANDLE hSession, CK_OBJECT_HANDLE hObject, CK_ATTRIBUTE_PTR pTemplate,
                                 CK_ULONG ulCount) {
    CK_RV rv;
    unsigned char val[MAX_CERT];
    if (!pTemplate && ulCount) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    struct object *o = s ? get_object(s, hObject) : NULL;
    if (s && !o) rv = CKR_OBJECT_HANDLE_INVALID;
    for (CK_ULONG i = 0; o && i < ulCount; i++) {
        long n = attr_value(o, pTemplate[i].type, val, sizeof val);
        if (n == -1 || n == -2 || n == -3) {
            pTemplate[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = n == -2 ? CKR_ATTRIBUTE_SENSITIVE : n == -1 ? CKR_ATTRIBUTE_TYPE_INVALID : CKR_DEVICE_ERROR;
        } else if (!pTemplate[i].pValue) {
            pTemplate[i].ulValueLen = (CK_ULONG)n;
        } else if (pTemplate[i].ulValueLen < (CK_ULONG)n) {
            pTemplate[i].ulValueLen = CK_UNAVAILABLE_INFORMATION;
            rv = CKR_BUFFER_TOO_SMALL;
        } else {
            memcpy(pTemplate[i].pValue, val, (size_t)n);
            pTemplate[i].ulValueLen = (CK_ULONG)n;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

static CK_ATTRIBUTE *find_attr(CK_ATTRIBUTE_PTR t, CK_ULONG n, CK_ATTRIBUTE_TYPE type) {
    for (CK_ULONG i = 0; t && i < n; i++)
        if (t[i].type == type) return &t[i];
    return NULL;
}

static int id_to_hex(const CK_ATTRIBUTE *a, char out[2 * MAX_ID + 1]) {
    if (!a || !a->pValue || a->ulValueLen == 0 || a->ulValueLen > MAX_ID) return -1;
    for (CK_ULONG i = 0; i < a->ulValueLen; i++) sprintf(out + 2 * i, "%02x", ((unsigned char *)a->pValue)[i]);
    return 0;
}

/* Certificates only: CKO_CERTIFICATE/CKC_X_509 with the CKA_ID of a key on the token. */
EXPORT CK_RV C_CreateObject(CK_SESSION_HANDLE hSession, CK_ATTRIBUTE_PTR pTemplate, CK_ULONG ulCount,
                            CK_OBJECT_HANDLE_PTR phObject) {
    CK_RV rv;
    char idhex[2 * MAX_ID + 1], p[PATH_MAX];
    if (!pTemplate || !phObject) return CKR_ARGUMENTS_BAD;
    CK_ATTRIBUTE *cls = find_attr(pTemplate, ulCount, CKA_CLASS), *val = find_attr(pTemplate, ulCount, CKA_VALUE);
    CK_ATTRIBUTE *id = find_attr(pTemplate, ulCount, CKA_ID);
    if (!cls || cls->ulValueLen != sizeof(CK_ULONG) || *(CK_ULONG *)cls->pValue != CKO_CERTIFICATE)
        return CKR_TEMPLATE_INCONSISTENT;
    if (!val || !val->pValue || val->ulValueLen == 0 || val->ulValueLen > MAX_CERT || id_to_hex(id, idhex) != 0)
        return CKR_TEMPLATE_INCOMPLETE;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    if (!s) goto out;
    if (!logged_in(s->token, s->ino)) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    if (!(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    CK_OBJECT_HANDLE kh = object_handle(s->token, idhex, O_PRIV);
    if (!kh || !object_exists(&g_objects[kh])) {
        rv = CKR_TEMPLATE_INCONSISTENT; /* no key with this CKA_ID */
        goto out;
    }
    key_file(&g_objects[kh], "cer", p);
    if (write_file_atomic(p, val->pValue, val->ulValueLen, 0644) != 0) rv = CKR_DEVICE_ERROR;
    else *phObject = object_handle(s->token, idhex, O_CERT);
out:
    pthread_mutex_unlock(&g_lock);
    return rv;
}

/* ---------------------------------------------------------------- keys and signing */

EXPORT CK_RV C_GenerateKeyPair(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism,
                               CK_ATTRIBUTE_PTR pPublicKeyTemplate, CK_ULONG ulPublicKeyAttributeCount,
                               CK_ATTRIBUTE_PTR pPrivateKeyTemplate, CK_ULONG ulPrivateKeyAttributeCount,
                               CK_OBJECT_HANDLE_PTR phPublicKey, CK_OBJECT_HANDLE_PTR phPrivateKey) {
    CK_RV rv;
    char idhex[2 * MAX_ID + 1], p[PATH_MAX];
    if (!pMechanism || !phPublicKey || !phPrivateKey) return CKR_ARGUMENTS_BAD;
    if (pMechanism->mechanism != CKM_EC_KEY_PAIR_GEN) return CKR_MECHANISM_INVALID;
    CK_ATTRIBUTE *params = find_attr(pPublicKeyTemplate, ulPublicKeyAttributeCount, CKA_EC_PARAMS);
    if (!params || params->ulValueLen != sizeof SM2_OID_DER || !params->pValue ||
        memcmp(params->pValue, SM2_OID_DER, sizeof SM2_OID_DER) != 0)
        return CKR_CURVE_NOT_SUPPORTED; /* SM2 only */
    CK_ATTRIBUTE *id = find_attr(pPrivateKeyTemplate, ulPrivateKeyAttributeCount, CKA_ID);
    if (!id) id = find_attr(pPublicKeyTemplate, ulPublicKeyAttributeCount, CKA_ID);
    CK_ATTRIBUTE *label = find_attr(pPrivateKeyTemplate, ulPrivateKeyAttributeCount, CKA_LABEL);
    if (!label) label = find_attr(pPublicKeyTemplate, ulPublicKeyAttributeCount, CKA_LABEL);
    if (id_to_hex(id, idhex) != 0) return CKR_TEMPLATE_INCOMPLETE; /* the test token files keys by CKA_ID */
    if (label && (label->ulValueLen > 255 || (label->ulValueLen && !label->pValue))) return CKR_ATTRIBUTE_VALUE_INVALID;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    EVP_PKEY *k = NULL;
    BIO *mem = NULL;
    if (!s) goto out;
    if (!logged_in(s->token, s->ino)) {
        rv = CKR_USER_NOT_LOGGED_IN;
        goto out;
    }
    if (!(s->flags & CKF_RW_SESSION)) {
        rv = CKR_SESSION_READ_ONLY;
        goto out;
    }
    token_path(s->token, "keys", p);
    mkdir(p, 0700);
    CK_OBJECT_HANDLE priv = object_handle(s->token, idhex, O_PRIV), pub = object_handle(s->token, idhex, O_PUB);
    if (!priv || !pub) {
        rv = CKR_DEVICE_MEMORY;
        goto out;
    }
    if (object_exists(&g_objects[priv])) {
        rv = CKR_TEMPLATE_INCONSISTENT; /* a key with this CKA_ID exists: never overwritten */
        goto out;
    }
    k = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    mem = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    if (!k || !mem || !PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL)) {
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    len = BIO_get_mem_data(mem, &data);
    key_file(&g_objects[priv], "label", p);
    if (write_file_atomic(p, label && label->ulValueLen ? label->pValue : "", label ? label->ulValueLen : 0, 0644) != 0) {
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    key_file(&g_objects[priv], "cer", p);
    unlink(p); /* a stale certificate never belongs to a new key */
    key_file(&g_objects[priv], "key", p);
    if (write_file_atomic(p, data, (size_t)len, 0600) != 0) {
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    *phPrivateKey = priv;
    *phPublicKey = pub;
    rv = CKR_OK;
out:
    BIO_free(mem);
    EVP_PKEY_free(k);
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT CK_RV C_SignInit(CK_SESSION_HANDLE hSession, CK_MECHANISM_PTR pMechanism, CK_OBJECT_HANDLE hKey) {
    CK_RV rv;
    if (!pMechanism) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    struct object *o = s ? get_object(s, hKey) : NULL;
    if (!s) goto out;
    if (s->sign_key) rv = CKR_OPERATION_ACTIVE;
    else if (pMechanism->mechanism != CKM_VENDOR_SM2_SIGN) rv = CKR_MECHANISM_INVALID;
    else if (pMechanism->ulParameterLen) rv = CKR_MECHANISM_PARAM_INVALID;
    else if (!logged_in(s->token, s->ino)) rv = CKR_USER_NOT_LOGGED_IN;
    else if (!o) rv = CKR_KEY_HANDLE_INVALID;
    else if (o->kind != O_PRIV) rv = CKR_KEY_FUNCTION_NOT_PERMITTED;
    else s->sign_key = hKey;
out:
    pthread_mutex_unlock(&g_lock);
    return rv;
}

/* CKM_SM2_SIGN (SANSEC): pData is e = SM3(Z || M), 32 bytes; the signature is r||s, 64 bytes. */
EXPORT CK_RV C_Sign(CK_SESSION_HANDLE hSession, CK_BYTE_PTR pData, CK_ULONG ulDataLen, CK_BYTE_PTR pSignature,
                    CK_ULONG_PTR pulSignatureLen) {
    CK_RV rv;
    unsigned char der[80];
    size_t derlen = sizeof der;
    EVP_PKEY *k = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    if (!pulSignatureLen) return CKR_ARGUMENTS_BAD;
    pthread_mutex_lock(&g_lock);
    struct session *s = get_session(hSession, &rv);
    if (!s) goto out;
    if (!s->sign_key) {
        rv = CKR_OPERATION_NOT_INITIALIZED;
        goto out;
    }
    if (!pSignature) { /* length query: the operation stays active */
        *pulSignatureLen = 64;
        rv = CKR_OK;
        goto out;
    }
    if (*pulSignatureLen < 64) {
        *pulSignatureLen = 64;
        rv = CKR_BUFFER_TOO_SMALL;
        goto out;
    }
    struct object *o = get_object(s, s->sign_key);
    s->sign_key = 0; /* from here on the operation ends, whatever the result */
    if (!pData || ulDataLen != 32) {
        rv = CKR_DATA_LEN_RANGE; /* e = SM3(Z || M), GM/T 0009 */
        goto out;
    }
    if (!o || !(k = load_key(o))) {
        rv = CKR_KEY_HANDLE_INVALID;
        goto out;
    }
    ctx = EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL);
    if (!ctx || EVP_PKEY_sign_init(ctx) != 1 || EVP_PKEY_sign(ctx, der, &derlen, pData, 32) != 1) {
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    const unsigned char *q = der;
    ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &q, (long)derlen);
    const BIGNUM *r, *sv;
    if (!sig) {
        rv = CKR_DEVICE_ERROR;
        goto out;
    }
    ECDSA_SIG_get0(sig, &r, &sv);
    BN_bn2binpad(r, pSignature, 32);
    BN_bn2binpad(sv, pSignature + 32, 32);
    ECDSA_SIG_free(sig);
    *pulSignatureLen = 64;
    rv = CKR_OK;
out:
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(k);
    pthread_mutex_unlock(&g_lock);
    return rv;
}

/* ---------------------------------------------------------------- the function list */

static CK_RV not_supported(void) { return CKR_FUNCTION_NOT_SUPPORTED; }

#define NS(field) g_functions.field = (__typeof__(g_functions.field))(void (*)(void))not_supported

__attribute__((constructor)) static void fill_function_list(void) {
    g_functions.version.major = 2;
    g_functions.version.minor = 40;
    g_functions.C_Initialize = C_Initialize;
    g_functions.C_Finalize = C_Finalize;
    g_functions.C_GetInfo = C_GetInfo;
    g_functions.C_GetFunctionList = C_GetFunctionList;
    g_functions.C_GetSlotList = C_GetSlotList;
    g_functions.C_GetSlotInfo = C_GetSlotInfo;
    g_functions.C_GetTokenInfo = C_GetTokenInfo;
    g_functions.C_GetMechanismList = C_GetMechanismList;
    g_functions.C_GetMechanismInfo = C_GetMechanismInfo;
    NS(C_InitToken);
    NS(C_InitPIN);
    g_functions.C_SetPIN = C_SetPIN;
    g_functions.C_OpenSession = C_OpenSession;
    g_functions.C_CloseSession = C_CloseSession;
    g_functions.C_CloseAllSessions = C_CloseAllSessions;
    g_functions.C_GetSessionInfo = C_GetSessionInfo;
    NS(C_GetOperationState);
    NS(C_SetOperationState);
    g_functions.C_Login = C_Login;
    g_functions.C_Logout = C_Logout;
    g_functions.C_CreateObject = C_CreateObject;
    NS(C_CopyObject);
    NS(C_DestroyObject);
    NS(C_GetObjectSize);
    g_functions.C_GetAttributeValue = C_GetAttributeValue;
    NS(C_SetAttributeValue);
    g_functions.C_FindObjectsInit = C_FindObjectsInit;
    g_functions.C_FindObjects = C_FindObjects;
    g_functions.C_FindObjectsFinal = C_FindObjectsFinal;
    NS(C_EncryptInit);
    NS(C_Encrypt);
    NS(C_EncryptUpdate);
    NS(C_EncryptFinal);
    NS(C_DecryptInit);
    NS(C_Decrypt);
    NS(C_DecryptUpdate);
    NS(C_DecryptFinal);
    NS(C_DigestInit);
    NS(C_Digest);
    NS(C_DigestUpdate);
    NS(C_DigestKey);
    NS(C_DigestFinal);
    g_functions.C_SignInit = C_SignInit;
    g_functions.C_Sign = C_Sign;
    NS(C_SignUpdate);
    NS(C_SignFinal);
    NS(C_SignRecoverInit);
    NS(C_SignRecover);
    NS(C_VerifyInit);
    NS(C_Verify);
    NS(C_VerifyUpdate);
    NS(C_VerifyFinal);
    NS(C_VerifyRecoverInit);
    NS(C_VerifyRecover);
    NS(C_DigestEncryptUpdate);
    NS(C_DecryptDigestUpdate);
    NS(C_SignEncryptUpdate);
    NS(C_DecryptVerifyUpdate);
    NS(C_GenerateKey);
    g_functions.C_GenerateKeyPair = C_GenerateKeyPair;
    NS(C_WrapKey);
    NS(C_UnwrapKey);
    NS(C_DeriveKey);
    NS(C_SeedRandom);
    NS(C_GenerateRandom);
    NS(C_GetFunctionStatus);
    NS(C_CancelFunction);
    NS(C_WaitForSlotEvent);
}
