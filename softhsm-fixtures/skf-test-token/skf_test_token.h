/*
 * Types and constants of the SKF interface (GM/T 0016-2012, "智能密码钥匙密码应用接口规范")
 * as far as the seald TEST token implements it. Written from the standard's tables;
 * struct layouts are packed (the standard's byte layout, e.g. DEVINFO = 294 bytes).
 *
 * TEST TOKEN ONLY: keys live in files on disk. See README.md beside this file.
 */
#ifndef SEALD_SKF_TEST_TOKEN_H
#define SEALD_SKF_TEST_TOKEN_H

#include <stdint.h>

typedef uint8_t BYTE;
typedef char CHAR;
typedef char *LPSTR;
typedef uint32_t ULONG; /* 32 bits on every platform, as SKF libraries for Linux define it */
typedef int32_t BOOL;
typedef void *HANDLE;
typedef HANDLE DEVHANDLE;
typedef HANDLE HAPPLICATION;
typedef HANDLE HCONTAINER;

#define SKF_TRUE 1
#define SKF_FALSE 0

#pragma pack(push, 1)
typedef struct {
    BYTE major;
    BYTE minor;
} VERSION;

typedef struct {
    VERSION Version;
    CHAR Manufacturer[64];
    CHAR Issuer[64];
    CHAR Label[32];
    CHAR SerialNumber[32];
    VERSION HWVersion;
    VERSION FirmwareVersion;
    ULONG AlgSymCap;
    ULONG AlgAsymCap;
    ULONG AlgHashCap;
    ULONG DevAuthAlgId;
    ULONG TotalSpace;
    ULONG FreeSpace;
    ULONG MaxECCBufferSize;
    ULONG MaxBufferSize;
    BYTE Reserved[64];
} DEVINFO;

#define ECC_MAX_XCOORDINATE_BITS_LEN 512
#define ECC_MAX_YCOORDINATE_BITS_LEN 512
#define ECC_MAX_MODULUS_BITS_LEN 512

/* Coordinates are big-endian and right-aligned in the 64-byte fields. */
typedef struct {
    ULONG BitLen;
    BYTE XCoordinate[ECC_MAX_XCOORDINATE_BITS_LEN / 8];
    BYTE YCoordinate[ECC_MAX_YCOORDINATE_BITS_LEN / 8];
} ECCPUBLICKEYBLOB;

typedef struct {
    BYTE r[ECC_MAX_XCOORDINATE_BITS_LEN / 8];
    BYTE s[ECC_MAX_XCOORDINATE_BITS_LEN / 8];
} ECCSIGNATUREBLOB;
#pragma pack(pop)

/* algorithm identifiers (GM/T 0006) */
#define SGD_SM3 0x00000001
#define SGD_SM2_1 0x00020100 /* SM2 signature */

#define ADMIN_TYPE 0
#define USER_TYPE 1

#define DEV_EVENT_INSERT 1
#define DEV_EVENT_REMOVE 2

/* error codes (GM/T 0016 appendix A) */
#define SAR_OK 0x00000000
#define SAR_FAIL 0x0A000001
#define SAR_NOTSUPPORTYETERR 0x0A000003
#define SAR_FILEERR 0x0A000004
#define SAR_INVALIDHANDLEERR 0x0A000005
#define SAR_INVALIDPARAMERR 0x0A000006
#define SAR_MEMORYERR 0x0A00000E
#define SAR_INDATALENERR 0x0A000010
#define SAR_KEYNOTFOUNTERR 0x0A00001B
#define SAR_CERTNOTFOUNTERR 0x0A00001C
#define SAR_BUFFER_TOO_SMALL 0x0A000020
#define SAR_NOT_EVENTERR 0x0A000022
#define SAR_DEVICE_REMOVED 0x0A000023
#define SAR_PIN_INCORRECT 0x0A000024
#define SAR_PIN_LOCKED 0x0A000025
#define SAR_PIN_INVALID 0x0A000026
#define SAR_PIN_LEN_RANGE 0x0A000027
#define SAR_USER_TYPE_INVALID 0x0A00002A
#define SAR_APPLICATION_NAME_INVALID 0x0A00002B
#define SAR_APPLICATION_EXISTS 0x0A00002C
#define SAR_USER_NOT_LOGGED_IN 0x0A00002D
#define SAR_APPLICATION_NOT_EXISTS 0x0A00002E
#define SAR_CONTAINER_ALREADY_EXIST 0x0A000033
#define SAR_CONTAINER_NOT_EXIST 0x0A000034

#endif
