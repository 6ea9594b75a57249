/*
 * seald's SKF TEST token: a software GM/T 0016 (SKF) library over files in a directory,
 * the way SoftHSM is a software PKCS#11 token. FOR TESTS ONLY: private keys are PEM files.
 *
 *   $SKF_TEST_TOKEN_DIR/<device>/                  a device ("inserted" while the dir exists)
 *   $SKF_TEST_TOKEN_DIR/<device>/serial            optional serial number (first line)
 *   $SKF_TEST_TOKEN_DIR/<device>/<app>/user.pin    "sm3hex max remaining default" (same for admin.pin)
 *   $SKF_TEST_TOKEN_DIR/<device>/<app>/<container>/sign.key   SM2 key, generated here, never exported
 *   $SKF_TEST_TOKEN_DIR/<device>/<app>/<container>/sign.cer   signing certificate (DER)
 *
 * Insertion/removal: tests move a device directory into or out of the root. Every call on a
 * handle checks that its device is still there (SAR_DEVICE_REMOVED otherwise) and a handle
 * that once saw its device gone stays dead, like a real token's session; SKF_WaitForDevEvent
 * polls the root (20 ms) and reports one insert/remove per call.
 *
 * SKF_ECCSignData signs the 32-byte value it is given AS the SM2 digest e: per GM/T 0016 the
 * caller passes data already preprocessed per GM/T 0009, e = SM3(Z || M), Z with the signer's
 * public key and user id. This token does not hash.
 *
 * Simplifications (documented in README.md): no device authentication (SKF_DevAuth) before
 * SKF_CreateApplication; signing keys only (no encryption key pair, no symmetric keys).
 * Test hook: SKF_TEST_TOKEN_SIGN_DELAY_MS makes ECCSignData wait, then re-check the device,
 * so a test can pull the token in the middle of a signature.
 */
#define _GNU_SOURCE
#include "skf_test_token.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#define EXPORT __attribute__((visibility("default")))
#define MAX_HANDLES 256
#define MAX_NAME 32
#define MAX_DEVICES 64
#define MAX_CERT 16384
#define PIN_MIN 6
#define PIN_MAX 16

enum kind { K_FREE = 0, K_DEV, K_APP, K_CON };

struct handle {
    int kind;
    int dead;           /* the device was seen absent: the handle never works again */
    int logged_in;      /* applications: user PIN verified */
    int dev;            /* index of the device handle (applications, containers) */
    int app;            /* index of the application handle (containers) */
    ino_t ino;          /* inode of the device directory at connect */
    char devname[MAX_NAME + 1];
    char path[PATH_MAX];
};

static pthread_mutex_t g_lock = PTHREAD_MUTEX_INITIALIZER;
static struct handle g_handles[MAX_HANDLES];

/* hot-plug state: the device names last reported by SKF_WaitForDevEvent */
static pthread_mutex_t g_wait_lock = PTHREAD_MUTEX_INITIALIZER;
static char g_known[MAX_DEVICES][MAX_NAME + 1];
static int g_known_n = -1; /* -1: not yet snapshotted */
static char g_known_root[PATH_MAX]; /* the root the snapshot was taken of */
static volatile unsigned g_cancel_gen = 0;

/* The root directory, or NULL when unset or so long that device paths could be truncated. */
static const char *root_dir(void) {
    const char *r = getenv("SKF_TEST_TOKEN_DIR");
    return (r && *r && strlen(r) < PATH_MAX - 4 * (MAX_NAME + 16)) ? r : NULL;
}

static int valid_name(const char *s) {
    size_t n;
    if (!s) return 0;
    n = strlen(s);
    if (n == 0 || n > MAX_NAME || s[0] == '.') return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
              c == '_' || c == '.'))
            return 0;
    }
    return 1;
}

static int is_dir(const char *p) {
    struct stat st;
    return stat(p, &st) == 0 && S_ISDIR(st.st_mode);
}

static int cmp_names(const void *a, const void *b) { return strcmp((const char *)a, (const char *)b); }

/* Sorted list of valid subdirectory names of dir; returns the count (<= max). */
static int list_dirs(const char *dir, char names[][MAX_NAME + 1], int max) {
    DIR *d;
    struct dirent *e;
    int n = 0;
    char p[PATH_MAX];
    if (!dir || !(d = opendir(dir))) return 0;
    while ((e = readdir(d)) != NULL && n < max) {
        if (!valid_name(e->d_name)) continue;
        snprintf(p, sizeof p, "%s/%s", dir, e->d_name);
        if (!is_dir(p)) continue;
        snprintf(names[n++], MAX_NAME + 1, "%s", e->d_name);
    }
    closedir(d);
    qsort(names, (size_t)n, MAX_NAME + 1, cmp_names);
    return n;
}

/* Write a NUL-separated, double-NUL-terminated name list per GM/T 0016's convention. */
static ULONG put_name_list(char names[][MAX_NAME + 1], int n, LPSTR out, ULONG *size) {
    ULONG need = 1;
    if (!size) return SAR_INVALIDPARAMERR;
    for (int i = 0; i < n; i++) need += (ULONG)strlen(names[i]) + 1;
    if (n == 0) need = 2;
    if (!out) {
        *size = need;
        return SAR_OK;
    }
    if (*size < need) {
        *size = need;
        return SAR_BUFFER_TOO_SMALL;
    }
    memset(out, 0, need);
    char *p = out;
    for (int i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        memcpy(p, names[i], l);
        p += l + 1;
    }
    *size = need;
    return SAR_OK;
}

/* Snapshot the present devices once, and again if the root directory was changed. */
static void snapshot_known_locked(void) {
    const char *r = root_dir() ? root_dir() : "";
    if (g_known_n < 0 || strcmp(g_known_root, r) != 0) {
        g_known_n = list_dirs(root_dir(), g_known, MAX_DEVICES);
        snprintf(g_known_root, sizeof g_known_root, "%s", r);
    }
}

static int alloc_handle(int kind) {
    for (int i = 1; i < MAX_HANDLES; i++) {
        if (g_handles[i].kind == K_FREE) {
            memset(&g_handles[i], 0, sizeof g_handles[i]);
            g_handles[i].kind = kind;
            return i;
        }
    }
    return -1;
}

static int handle_index(HANDLE h, int kind) {
    intptr_t i = (intptr_t)h;
    if (i <= 0 || i >= MAX_HANDLES || g_handles[i].kind != kind) return -1;
    return (int)i;
}

static HANDLE as_handle(int i) { return (HANDLE)(intptr_t)i; }

/* Is the device behind handle i still inserted (same directory as at connect)? */
static ULONG check_present(int i) {
    struct handle *h = &g_handles[i];
    struct handle *dev = h->kind == K_DEV ? h : &g_handles[h->dev];
    struct stat st;
    char p[PATH_MAX];
    if (dev->dead || h->dead) return SAR_DEVICE_REMOVED;
    snprintf(p, sizeof p, "%s/%s", root_dir() ? root_dir() : "", dev->devname);
    if (!root_dir() || stat(p, &st) != 0 || !S_ISDIR(st.st_mode) || st.st_ino != dev->ino) {
        dev->dead = 1;
        h->dead = 1;
        return SAR_DEVICE_REMOVED;
    }
    return SAR_OK;
}

static void mark_device_dead(const char *name) {
    pthread_mutex_lock(&g_lock);
    for (int i = 1; i < MAX_HANDLES; i++)
        if (g_handles[i].kind != K_FREE && strcmp(g_handles[i].devname, name) == 0) g_handles[i].dead = 1;
    pthread_mutex_unlock(&g_lock);
}

/* ---------------------------------------------------------------- PIN files */

struct pin_state {
    char hash[65];
    unsigned max, remaining, is_default;
};

static void pin_hash(const char *app, const char *pin, char out[65]) {
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int len = 0;
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    /* salted with the application name so two apps with one PIN differ on disk */
    EVP_DigestInit_ex(c, EVP_sm3(), NULL);
    EVP_DigestUpdate(c, app, strlen(app));
    EVP_DigestUpdate(c, ":", 1);
    EVP_DigestUpdate(c, pin, strlen(pin));
    EVP_DigestFinal_ex(c, md, &len);
    EVP_MD_CTX_free(c);
    for (unsigned i = 0; i < 32; i++) sprintf(out + 2 * i, "%02x", md[i]);
    out[64] = 0;
}

static const char *pin_file(ULONG type) { return type == ADMIN_TYPE ? "admin.pin" : "user.pin"; }

static int read_pin(const char *appdir, ULONG type, struct pin_state *ps) {
    char p[PATH_MAX];
    FILE *f;
    snprintf(p, sizeof p, "%s/%s", appdir, pin_file(type));
    if (!(f = fopen(p, "r"))) return -1;
    int ok = fscanf(f, "%64s %u %u %u", ps->hash, &ps->max, &ps->remaining, &ps->is_default) == 4;
    fclose(f);
    return ok ? 0 : -1;
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

static int write_pin(const char *appdir, ULONG type, const struct pin_state *ps) {
    char p[PATH_MAX], buf[128];
    int n = snprintf(buf, sizeof buf, "%s %u %u %u\n", ps->hash, ps->max, ps->remaining, ps->is_default);
    snprintf(p, sizeof p, "%s/%s", appdir, pin_file(type));
    return write_file_atomic(p, buf, (size_t)n, 0600);
}

static const char *app_name_of(const char *appdir) {
    const char *s = strrchr(appdir, '/');
    return s ? s + 1 : appdir;
}

/* Check a PIN, count down or reset the retry counter. */
static ULONG check_pin(const char *appdir, ULONG type, const char *pin, ULONG *retry) {
    struct pin_state ps;
    char h[65];
    if (type != ADMIN_TYPE && type != USER_TYPE) return SAR_USER_TYPE_INVALID;
    if (!pin) return SAR_INVALIDPARAMERR;
    if (read_pin(appdir, type, &ps) != 0) return SAR_FILEERR;
    if (ps.remaining == 0) {
        if (retry) *retry = 0;
        return SAR_PIN_LOCKED;
    }
    pin_hash(app_name_of(appdir), pin, h);
    if (CRYPTO_memcmp(h, ps.hash, 64) != 0) {
        ps.remaining--;
        if (write_pin(appdir, type, &ps) != 0) return SAR_FILEERR;
        if (retry) *retry = ps.remaining;
        return ps.remaining == 0 ? SAR_PIN_LOCKED : SAR_PIN_INCORRECT;
    }
    if (ps.remaining != ps.max) {
        ps.remaining = ps.max;
        if (write_pin(appdir, type, &ps) != 0) return SAR_FILEERR;
    }
    if (retry) *retry = ps.remaining;
    return SAR_OK;
}

static int pin_len_ok(const char *pin) { return pin && strlen(pin) >= PIN_MIN && strlen(pin) <= PIN_MAX; }

/* ---------------------------------------------------------------- devices */

EXPORT ULONG SKF_WaitForDevEvent(LPSTR szDevName, ULONG *pulDevNameLen, ULONG *pulEvent) {
    char cur[MAX_DEVICES][MAX_NAME + 1];
    unsigned gen = g_cancel_gen;
    if (!szDevName || !pulDevNameLen || !pulEvent) return SAR_INVALIDPARAMERR;
    for (;;) {
        /* the lock is held only to compare and update the snapshot, never while sleeping:
           SKF_EnumDev on another thread must not wait for the next device event */
        pthread_mutex_lock(&g_wait_lock);
        snapshot_known_locked();
        int n = list_dirs(root_dir(), cur, MAX_DEVICES);
        const char *name = NULL;
        ULONG ev = 0;
        for (int i = 0; i < g_known_n && !name; i++) {
            int found = 0;
            for (int j = 0; j < n; j++) found |= strcmp(g_known[i], cur[j]) == 0;
            if (!found) name = g_known[i], ev = DEV_EVENT_REMOVE;
        }
        for (int j = 0; j < n && !name; j++) {
            int found = 0;
            for (int i = 0; i < g_known_n; i++) found |= strcmp(g_known[i], cur[j]) == 0;
            if (!found) name = cur[j], ev = DEV_EVENT_INSERT;
        }
        if (name) {
            ULONG need = (ULONG)strlen(name) + 1;
            char reported[MAX_NAME + 1];
            if (*pulDevNameLen < need) {
                *pulDevNameLen = need;
                pthread_mutex_unlock(&g_wait_lock);
                return SAR_BUFFER_TOO_SMALL;
            }
            snprintf(reported, sizeof reported, "%s", name);
            memcpy(szDevName, reported, need);
            *pulDevNameLen = need;
            *pulEvent = ev;
            memcpy(g_known, cur, sizeof cur);
            g_known_n = n;
            pthread_mutex_unlock(&g_wait_lock);
            if (ev == DEV_EVENT_REMOVE) mark_device_dead(reported);
            return SAR_OK;
        }
        pthread_mutex_unlock(&g_wait_lock);
        if (g_cancel_gen != gen) return SAR_NOT_EVENTERR; /* cancelled by SKF_CancelWaitForDevEvent */
        struct timespec ts = {0, 20 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
}

EXPORT ULONG SKF_CancelWaitForDevEvent(void) {
    __atomic_add_fetch(&g_cancel_gen, 1, __ATOMIC_SEQ_CST);
    return SAR_OK;
}

EXPORT ULONG SKF_EnumDev(BOOL bPresent, LPSTR szNameList, ULONG *pulSize) {
    char names[MAX_DEVICES][MAX_NAME + 1];
    (void)bPresent; /* a test token supports exactly the devices that are present */
    pthread_mutex_lock(&g_wait_lock);
    snapshot_known_locked();
    pthread_mutex_unlock(&g_wait_lock);
    int n = list_dirs(root_dir(), names, MAX_DEVICES);
    return put_name_list(names, n, szNameList, pulSize);
}

EXPORT ULONG SKF_GetDevState(LPSTR szDevName, ULONG *pulDevState) {
    char p[PATH_MAX];
    if (!valid_name(szDevName) || !pulDevState) return SAR_INVALIDPARAMERR;
    snprintf(p, sizeof p, "%s/%s", root_dir() ? root_dir() : "/nonexistent", szDevName);
    *pulDevState = is_dir(p) ? 1 : 0;
    return SAR_OK;
}

EXPORT ULONG SKF_ConnectDev(LPSTR szName, DEVHANDLE *phDev) {
    struct stat st;
    char p[PATH_MAX];
    if (!valid_name(szName) || !phDev || !root_dir()) return SAR_INVALIDPARAMERR;
    snprintf(p, sizeof p, "%s/%s", root_dir(), szName);
    if (stat(p, &st) != 0 || !S_ISDIR(st.st_mode)) return SAR_DEVICE_REMOVED;
    pthread_mutex_lock(&g_lock);
    int i = alloc_handle(K_DEV);
    if (i < 0) {
        pthread_mutex_unlock(&g_lock);
        return SAR_MEMORYERR;
    }
    g_handles[i].ino = st.st_ino;
    snprintf(g_handles[i].devname, sizeof g_handles[i].devname, "%s", szName);
    snprintf(g_handles[i].path, sizeof g_handles[i].path, "%s", p);
    *phDev = as_handle(i);
    pthread_mutex_unlock(&g_lock);
    return SAR_OK;
}

EXPORT ULONG SKF_DisConnectDev(DEVHANDLE hDev) {
    pthread_mutex_lock(&g_lock);
    int i = handle_index(hDev, K_DEV);
    if (i < 0) {
        pthread_mutex_unlock(&g_lock);
        return SAR_INVALIDHANDLEERR;
    }
    for (int j = 1; j < MAX_HANDLES; j++)
        if (g_handles[j].kind != K_FREE && g_handles[j].kind != K_DEV && g_handles[j].dev == i)
            g_handles[j].kind = K_FREE;
    g_handles[i].kind = K_FREE;
    pthread_mutex_unlock(&g_lock);
    return SAR_OK;
}

EXPORT ULONG SKF_GetDevInfo(DEVHANDLE hDev, DEVINFO *pDevInfo) {
    char p[PATH_MAX], serial[33] = {0};
    FILE *f;
    ULONG rv;
    if (!pDevInfo) return SAR_INVALIDPARAMERR;
    pthread_mutex_lock(&g_lock);
    int i = handle_index(hDev, K_DEV);
    if (i < 0) rv = SAR_INVALIDHANDLEERR;
    else if ((rv = check_present(i)) == SAR_OK) {
        memset(pDevInfo, 0, sizeof *pDevInfo);
        pDevInfo->Version.major = 1;
        pDevInfo->Version.minor = 0;
        snprintf(pDevInfo->Manufacturer, sizeof pDevInfo->Manufacturer, "seald test token");
        snprintf(pDevInfo->Issuer, sizeof pDevInfo->Issuer, "seald tests (NOT A REAL TOKEN)");
        snprintf(pDevInfo->Label, sizeof pDevInfo->Label, "%s", g_handles[i].devname);
        snprintf(p, sizeof p, "%s/serial", g_handles[i].path);
        if ((f = fopen(p, "r"))) {
            if (fscanf(f, "%32s", serial) != 1) serial[0] = 0;
            fclose(f);
        }
        snprintf(pDevInfo->SerialNumber, sizeof pDevInfo->SerialNumber, "%s",
                 serial[0] ? serial : g_handles[i].devname);
        pDevInfo->HWVersion.major = 1;
        pDevInfo->FirmwareVersion.major = 1;
        pDevInfo->AlgAsymCap = SGD_SM2_1;
        pDevInfo->AlgHashCap = SGD_SM3;
        pDevInfo->TotalSpace = 65536;
        pDevInfo->FreeSpace = 65536;
        pDevInfo->MaxECCBufferSize = 32;
        pDevInfo->MaxBufferSize = MAX_CERT;
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

/* ---------------------------------------------------------------- applications */

static ULONG open_app_locked(int dev, const char *name, HAPPLICATION *ph) {
    int a = alloc_handle(K_APP);
    if (a < 0) return SAR_MEMORYERR;
    g_handles[a].dev = dev;
    struct handle parent = g_handles[dev]; /* a copy: snprintf's arguments must not overlap */
    snprintf(g_handles[a].devname, sizeof g_handles[a].devname, "%s", parent.devname);
    snprintf(g_handles[a].path, sizeof g_handles[a].path, "%s/%s", parent.path, name);
    *ph = as_handle(a);
    return SAR_OK;
}

EXPORT ULONG SKF_CreateApplication(DEVHANDLE hDev, LPSTR szAppName, LPSTR szAdminPin, ULONG dwAdminPinRetryCount,
                                   LPSTR szUserPin, ULONG dwUserPinRetryCount, ULONG dwCreateFileRights,
                                   HAPPLICATION *phApplication) {
    char p[PATH_MAX];
    ULONG rv;
    struct pin_state ps;
    (void)dwCreateFileRights;
    if (!valid_name(szAppName)) return SAR_APPLICATION_NAME_INVALID;
    if (!pin_len_ok(szAdminPin) || !pin_len_ok(szUserPin)) return SAR_PIN_LEN_RANGE;
    if (!phApplication || dwAdminPinRetryCount == 0 || dwUserPinRetryCount == 0 || dwAdminPinRetryCount > 15 ||
        dwUserPinRetryCount > 15)
        return SAR_INVALIDPARAMERR;
    pthread_mutex_lock(&g_lock);
    int i = handle_index(hDev, K_DEV);
    if (i < 0) rv = SAR_INVALIDHANDLEERR;
    else if ((rv = check_present(i)) == SAR_OK) {
        snprintf(p, sizeof p, "%s/%s", g_handles[i].path, szAppName);
        if (mkdir(p, 0700) != 0) rv = errno == EEXIST ? SAR_APPLICATION_EXISTS : SAR_FILEERR;
        else {
            pin_hash(szAppName, szAdminPin, ps.hash);
            ps.max = ps.remaining = dwAdminPinRetryCount;
            ps.is_default = 0;
            int bad = write_pin(p, ADMIN_TYPE, &ps);
            pin_hash(szAppName, szUserPin, ps.hash);
            ps.max = ps.remaining = dwUserPinRetryCount;
            ps.is_default = 1; /* the issuer's initial PIN: must be changed before use (R07) */
            bad |= write_pin(p, USER_TYPE, &ps);
            rv = bad ? SAR_FILEERR : open_app_locked(i, szAppName, phApplication);
        }
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_EnumApplication(DEVHANDLE hDev, LPSTR szAppName, ULONG *pulSize) {
    char names[MAX_DEVICES][MAX_NAME + 1];
    ULONG rv;
    int n = 0;
    pthread_mutex_lock(&g_lock);
    int i = handle_index(hDev, K_DEV);
    if (i < 0) rv = SAR_INVALIDHANDLEERR;
    else if ((rv = check_present(i)) == SAR_OK) {
        n = list_dirs(g_handles[i].path, names, MAX_DEVICES);
        rv = put_name_list(names, n, szAppName, pulSize);
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_OpenApplication(DEVHANDLE hDev, LPSTR szAppName, HAPPLICATION *phApplication) {
    char p[PATH_MAX];
    ULONG rv;
    if (!valid_name(szAppName)) return SAR_APPLICATION_NAME_INVALID;
    if (!phApplication) return SAR_INVALIDPARAMERR;
    pthread_mutex_lock(&g_lock);
    int i = handle_index(hDev, K_DEV);
    if (i < 0) rv = SAR_INVALIDHANDLEERR;
    else if ((rv = check_present(i)) == SAR_OK) {
        snprintf(p, sizeof p, "%s/%s/user.pin", g_handles[i].path, szAppName);
        rv = access(p, R_OK) == 0 ? open_app_locked(i, szAppName, phApplication) : SAR_APPLICATION_NOT_EXISTS;
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_CloseApplication(HAPPLICATION hApplication) {
    pthread_mutex_lock(&g_lock);
    int a = handle_index(hApplication, K_APP);
    if (a < 0) {
        pthread_mutex_unlock(&g_lock);
        return SAR_INVALIDHANDLEERR;
    }
    for (int j = 1; j < MAX_HANDLES; j++)
        if (g_handles[j].kind == K_CON && g_handles[j].app == a) g_handles[j].kind = K_FREE;
    g_handles[a].kind = K_FREE;
    pthread_mutex_unlock(&g_lock);
    return SAR_OK;
}

/* Look up an application handle and check its device; on success the lock is held. */
static ULONG enter_app(HAPPLICATION h, int *out) {
    pthread_mutex_lock(&g_lock);
    int a = handle_index(h, K_APP);
    ULONG rv = a < 0 ? SAR_INVALIDHANDLEERR : check_present(a);
    if (rv != SAR_OK) {
        pthread_mutex_unlock(&g_lock);
        return rv;
    }
    *out = a;
    return SAR_OK;
}

EXPORT ULONG SKF_VerifyPIN(HAPPLICATION hApplication, ULONG ulPINType, LPSTR szPIN, ULONG *pulRetryCount) {
    int a;
    ULONG rv = enter_app(hApplication, &a);
    if (rv != SAR_OK) return rv;
    rv = check_pin(g_handles[a].path, ulPINType, szPIN, pulRetryCount);
    if (ulPINType == USER_TYPE) g_handles[a].logged_in = rv == SAR_OK;
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_ChangePIN(HAPPLICATION hApplication, ULONG ulPINType, LPSTR szOldPin, LPSTR szNewPin,
                           ULONG *pulRetryCount) {
    int a;
    struct pin_state ps;
    if (!pin_len_ok(szNewPin)) return SAR_PIN_LEN_RANGE;
    ULONG rv = enter_app(hApplication, &a);
    if (rv != SAR_OK) return rv;
    rv = check_pin(g_handles[a].path, ulPINType, szOldPin, pulRetryCount);
    if (rv == SAR_OK) {
        if (read_pin(g_handles[a].path, ulPINType, &ps) != 0) rv = SAR_FILEERR;
        else {
            pin_hash(app_name_of(g_handles[a].path), szNewPin, ps.hash);
            ps.is_default = 0;
            ps.remaining = ps.max;
            if (write_pin(g_handles[a].path, ulPINType, &ps) != 0) rv = SAR_FILEERR;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_GetPINInfo(HAPPLICATION hApplication, ULONG ulPINType, ULONG *pulMaxRetryCount,
                            ULONG *pulRemainRetryCount, BOOL *pbDefaultPin) {
    int a;
    struct pin_state ps;
    if (ulPINType != ADMIN_TYPE && ulPINType != USER_TYPE) return SAR_USER_TYPE_INVALID;
    if (!pulMaxRetryCount || !pulRemainRetryCount || !pbDefaultPin) return SAR_INVALIDPARAMERR;
    ULONG rv = enter_app(hApplication, &a);
    if (rv != SAR_OK) return rv;
    if (read_pin(g_handles[a].path, ulPINType, &ps) != 0) rv = SAR_FILEERR;
    else {
        *pulMaxRetryCount = ps.max;
        *pulRemainRetryCount = ps.remaining;
        *pbDefaultPin = ps.is_default ? SKF_TRUE : SKF_FALSE;
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_UnblockPIN(HAPPLICATION hApplication, LPSTR szAdminPIN, LPSTR szNewUserPIN, ULONG *pulRetryCount) {
    int a;
    struct pin_state ps;
    if (!pin_len_ok(szNewUserPIN)) return SAR_PIN_LEN_RANGE;
    ULONG rv = enter_app(hApplication, &a);
    if (rv != SAR_OK) return rv;
    rv = check_pin(g_handles[a].path, ADMIN_TYPE, szAdminPIN, pulRetryCount);
    if (rv == SAR_OK) {
        if (read_pin(g_handles[a].path, USER_TYPE, &ps) != 0) rv = SAR_FILEERR;
        else {
            pin_hash(app_name_of(g_handles[a].path), szNewUserPIN, ps.hash);
            ps.remaining = ps.max;
            ps.is_default = 1; /* set by the administrator: the holder must change it */
            if (write_pin(g_handles[a].path, USER_TYPE, &ps) != 0) rv = SAR_FILEERR;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_ClearSecureState(HAPPLICATION hApplication) {
    int a;
    ULONG rv = enter_app(hApplication, &a);
    if (rv != SAR_OK) return rv;
    g_handles[a].logged_in = 0;
    pthread_mutex_unlock(&g_lock);
    return SAR_OK;
}

/* ---------------------------------------------------------------- containers */

static ULONG open_con_locked(int a, const char *name, HCONTAINER *ph) {
    int c = alloc_handle(K_CON);
    if (c < 0) return SAR_MEMORYERR;
    g_handles[c].app = a;
    g_handles[c].dev = g_handles[a].dev;
    struct handle parent = g_handles[a];
    snprintf(g_handles[c].devname, sizeof g_handles[c].devname, "%s", parent.devname);
    snprintf(g_handles[c].path, sizeof g_handles[c].path, "%s/%s", parent.path, name);
    *ph = as_handle(c);
    return SAR_OK;
}

EXPORT ULONG SKF_CreateContainer(HAPPLICATION hApplication, LPSTR szContainerName, HCONTAINER *phContainer) {
    int a;
    char p[PATH_MAX];
    if (!valid_name(szContainerName) || !phContainer) return SAR_INVALIDPARAMERR;
    ULONG rv = enter_app(hApplication, &a);
    if (rv != SAR_OK) return rv;
    if (!g_handles[a].logged_in) rv = SAR_USER_NOT_LOGGED_IN;
    else {
        snprintf(p, sizeof p, "%s/%s", g_handles[a].path, szContainerName);
        if (mkdir(p, 0700) != 0) rv = errno == EEXIST ? SAR_CONTAINER_ALREADY_EXIST : SAR_FILEERR;
        else rv = open_con_locked(a, szContainerName, phContainer);
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_DeleteContainer(HAPPLICATION hApplication, LPSTR szContainerName) {
    int a;
    char p[PATH_MAX], f[PATH_MAX];
    if (!valid_name(szContainerName)) return SAR_INVALIDPARAMERR;
    ULONG rv = enter_app(hApplication, &a);
    if (rv != SAR_OK) return rv;
    snprintf(p, sizeof p, "%s/%s", g_handles[a].path, szContainerName);
    if (!g_handles[a].logged_in) rv = SAR_USER_NOT_LOGGED_IN;
    else if (!is_dir(p)) rv = SAR_CONTAINER_NOT_EXIST;
    else {
        snprintf(f, sizeof f, "%s/sign.key", p);
        unlink(f);
        snprintf(f, sizeof f, "%s/sign.cer", p);
        unlink(f);
        rv = rmdir(p) == 0 ? SAR_OK : SAR_FILEERR;
        for (int j = 1; j < MAX_HANDLES; j++)
            if (g_handles[j].kind == K_CON && strcmp(g_handles[j].path, p) == 0) g_handles[j].kind = K_FREE;
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_EnumContainer(HAPPLICATION hApplication, LPSTR szContainerName, ULONG *pulSize) {
    int a;
    char names[MAX_DEVICES][MAX_NAME + 1];
    ULONG rv = enter_app(hApplication, &a);
    if (rv != SAR_OK) return rv;
    int n = list_dirs(g_handles[a].path, names, MAX_DEVICES);
    rv = put_name_list(names, n, szContainerName, pulSize);
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_OpenContainer(HAPPLICATION hApplication, LPSTR szContainerName, HCONTAINER *phContainer) {
    int a;
    char p[PATH_MAX];
    if (!valid_name(szContainerName) || !phContainer) return SAR_INVALIDPARAMERR;
    ULONG rv = enter_app(hApplication, &a);
    if (rv != SAR_OK) return rv;
    snprintf(p, sizeof p, "%s/%s", g_handles[a].path, szContainerName);
    rv = is_dir(p) ? open_con_locked(a, szContainerName, phContainer) : SAR_CONTAINER_NOT_EXIST;
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_CloseContainer(HCONTAINER hContainer) {
    pthread_mutex_lock(&g_lock);
    int c = handle_index(hContainer, K_CON);
    if (c >= 0) g_handles[c].kind = K_FREE;
    pthread_mutex_unlock(&g_lock);
    return c < 0 ? SAR_INVALIDHANDLEERR : SAR_OK;
}

/* Look up a container handle and check its device; on success the lock is held. */
static ULONG enter_con(HCONTAINER h, int *out, int need_login) {
    pthread_mutex_lock(&g_lock);
    int c = handle_index(h, K_CON);
    ULONG rv = c < 0 ? SAR_INVALIDHANDLEERR : check_present(c);
    if (rv == SAR_OK && need_login) {
        int a = g_handles[c].app;
        if (g_handles[a].kind != K_APP || !g_handles[a].logged_in) rv = SAR_USER_NOT_LOGGED_IN;
    }
    if (rv != SAR_OK) {
        pthread_mutex_unlock(&g_lock);
        return rv;
    }
    *out = c;
    return SAR_OK;
}

static EVP_PKEY *load_key(const char *condir) {
    char p[PATH_MAX];
    FILE *f;
    EVP_PKEY *k;
    snprintf(p, sizeof p, "%s/sign.key", condir);
    if (!(f = fopen(p, "r"))) return NULL;
    k = PEM_read_PrivateKey(f, NULL, NULL, NULL);
    fclose(f);
    return k;
}

static ULONG fill_pub_blob(EVP_PKEY *k, ECCPUBLICKEYBLOB *blob) {
    unsigned char pt[65];
    size_t len = 0;
    if (!EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, pt, sizeof pt, &len) || len != 65 ||
        pt[0] != 4)
        return SAR_FAIL;
    memset(blob, 0, sizeof *blob);
    blob->BitLen = 256;
    memcpy(blob->XCoordinate + 32, pt + 1, 32);
    memcpy(blob->YCoordinate + 32, pt + 33, 32);
    return SAR_OK;
}

EXPORT ULONG SKF_GenECCKeyPair(HCONTAINER hContainer, ULONG ulAlgId, ECCPUBLICKEYBLOB *pBlob) {
    int c;
    char p[PATH_MAX];
    if (ulAlgId != SGD_SM2_1) return SAR_NOTSUPPORTYETERR;
    if (!pBlob) return SAR_INVALIDPARAMERR;
    ULONG rv = enter_con(hContainer, &c, 1);
    if (rv != SAR_OK) return rv;
    EVP_PKEY *k = EVP_PKEY_Q_keygen(NULL, NULL, "SM2");
    BIO *mem = BIO_new(BIO_s_mem());
    char *data = NULL;
    long len;
    if (!k || !mem || !PEM_write_bio_PrivateKey(mem, k, NULL, NULL, 0, NULL, NULL)) rv = SAR_FAIL;
    else {
        len = BIO_get_mem_data(mem, &data);
        snprintf(p, sizeof p, "%s/sign.key", g_handles[c].path);
        if (write_file_atomic(p, data, (size_t)len, 0600) != 0) rv = SAR_FILEERR;
        else {
            /* a new key voids the old certificate */
            snprintf(p, sizeof p, "%s/sign.cer", g_handles[c].path);
            unlink(p);
            rv = fill_pub_blob(k, pBlob);
        }
    }
    BIO_free(mem);
    EVP_PKEY_free(k);
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_ExportPublicKey(HCONTAINER hContainer, BOOL bSignFlag, BYTE *pbBlob, ULONG *pulBlobLen) {
    int c;
    if (!pulBlobLen) return SAR_INVALIDPARAMERR;
    if (!bSignFlag) return SAR_NOTSUPPORTYETERR; /* no encryption key pair in the test token */
    ULONG rv = enter_con(hContainer, &c, 0);
    if (rv != SAR_OK) return rv;
    EVP_PKEY *k = load_key(g_handles[c].path);
    if (!k) rv = SAR_KEYNOTFOUNTERR;
    else if (!pbBlob) *pulBlobLen = sizeof(ECCPUBLICKEYBLOB);
    else if (*pulBlobLen < sizeof(ECCPUBLICKEYBLOB)) {
        *pulBlobLen = sizeof(ECCPUBLICKEYBLOB);
        rv = SAR_BUFFER_TOO_SMALL;
    } else {
        rv = fill_pub_blob(k, (ECCPUBLICKEYBLOB *)pbBlob);
        *pulBlobLen = sizeof(ECCPUBLICKEYBLOB);
    }
    EVP_PKEY_free(k);
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_ImportCertificate(HCONTAINER hContainer, BOOL bSignFlag, BYTE *pbCert, ULONG ulCertLen) {
    int c;
    char p[PATH_MAX];
    if (!bSignFlag) return SAR_NOTSUPPORTYETERR;
    if (!pbCert || ulCertLen == 0 || ulCertLen > MAX_CERT) return SAR_INDATALENERR;
    ULONG rv = enter_con(hContainer, &c, 1);
    if (rv != SAR_OK) return rv;
    snprintf(p, sizeof p, "%s/sign.cer", g_handles[c].path);
    rv = write_file_atomic(p, pbCert, ulCertLen, 0644) == 0 ? SAR_OK : SAR_FILEERR;
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_ExportCertificate(HCONTAINER hContainer, BOOL bSignFlag, BYTE *pbCert, ULONG *pulCertLen) {
    int c;
    char p[PATH_MAX];
    unsigned char buf[MAX_CERT];
    if (!pulCertLen) return SAR_INVALIDPARAMERR;
    if (!bSignFlag) return SAR_NOTSUPPORTYETERR;
    ULONG rv = enter_con(hContainer, &c, 0);
    if (rv != SAR_OK) return rv;
    snprintf(p, sizeof p, "%s/sign.cer", g_handles[c].path);
    FILE *f = fopen(p, "rb");
    if (!f) rv = SAR_CERTNOTFOUNTERR;
    else {
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        if (!pbCert) *pulCertLen = (ULONG)n;
        else if (*pulCertLen < n) {
            *pulCertLen = (ULONG)n;
            rv = SAR_BUFFER_TOO_SMALL;
        } else {
            memcpy(pbCert, buf, n);
            *pulCertLen = (ULONG)n;
        }
    }
    pthread_mutex_unlock(&g_lock);
    return rv;
}

EXPORT ULONG SKF_ECCSignData(HCONTAINER hContainer, BYTE *pbData, ULONG ulDataLen, ECCSIGNATUREBLOB *pSignature) {
    int c;
    unsigned char der[80];
    size_t derlen = sizeof der;
    const char *delay = getenv("SKF_TEST_TOKEN_SIGN_DELAY_MS");
    if (!pbData || !pSignature) return SAR_INVALIDPARAMERR;
    if (ulDataLen != 32) return SAR_INDATALENERR; /* e = SM3(Z || M), GM/T 0009 */
    ULONG rv = enter_con(hContainer, &c, 1);
    if (rv != SAR_OK) return rv;
    EVP_PKEY *k = load_key(g_handles[c].path);
    EVP_PKEY_CTX *ctx = k ? EVP_PKEY_CTX_new_from_pkey(NULL, k, NULL) : NULL;
    if (!k) rv = SAR_KEYNOTFOUNTERR;
    else if (!ctx || EVP_PKEY_sign_init(ctx) != 1 || EVP_PKEY_sign(ctx, der, &derlen, pbData, 32) != 1)
        rv = SAR_FAIL;
    if (rv == SAR_OK && delay && atoi(delay) > 0) {
        /* test hook: a token pulled while it computes loses the result */
        struct timespec ts = {atoi(delay) / 1000, (long)(atoi(delay) % 1000) * 1000000L};
        pthread_mutex_unlock(&g_lock);
        nanosleep(&ts, NULL);
        pthread_mutex_lock(&g_lock);
        rv = check_present(c);
    }
    if (rv == SAR_OK) {
        const unsigned char *q = der;
        ECDSA_SIG *sig = d2i_ECDSA_SIG(NULL, &q, (long)derlen);
        const BIGNUM *r, *s;
        if (!sig) rv = SAR_FAIL;
        else {
            ECDSA_SIG_get0(sig, &r, &s);
            memset(pSignature, 0, sizeof *pSignature);
            BN_bn2binpad(r, pSignature->r + 32, 32);
            BN_bn2binpad(s, pSignature->s + 32, 32);
            ECDSA_SIG_free(sig);
        }
    }
    EVP_PKEY_CTX_free(ctx);
    EVP_PKEY_free(k);
    pthread_mutex_unlock(&g_lock);
    return rv;
}
