/*
 * preflight.c — what serving checks before it loads anything (and before a
 * default model is trained): the API key file, and whether the listen address
 * would expose a keyless daemon.
 *
 * Safe by default: a daemon reachable from other hosts with no key would let
 * anyone enroll and delete, so an address other than loopback with no key is
 * refused unless allow_anonymous says so. The key file gives a container a
 * key without configuration: the first start writes a random one (mode 0600,
 * written to a temporary name and linked into place, so a second process
 * racing it never sees half a key) and prints it once, as Jupyter does with
 * its token; later starts read it and print only where it is.
 *
 * Then what libmicrohttpd would only report as "cannot start": the TLS files
 * are read and must look like PEM (a certificate; a private key), and the
 * listen address is bound once, so that a port in use, a privileged port or
 * an address of another machine each get their own message. All of this
 * runs before a default model is trained, not a minute later.
 */
#include <arpa/inet.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include "siamese/common.h"
#include "siamese/log.h"
#include "siamese/serve.h"
#include "siamese/store.h"

#define KEY_BYTES 32 /* 64 hex characters */
#define KEY_FILE_MAX 1024

/* 1 if every address host resolves to is a loopback one; 0 if one is not
 * (the empty host, every interface, included); -1 if it does not resolve
 * (binding will then report it). */
static int all_loopback(const char *host) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM}, *res = NULL;
    if (!*host)
        return 0;
    if (getaddrinfo(host, NULL, &hints, &res) != 0)
        return -1;
    int loop = 1;
    for (const struct addrinfo *a = res; a && loop; a = a->ai_next) {
        if (a->ai_family == AF_INET) {
            uint32_t ip = ntohl(((const struct sockaddr_in *)a->ai_addr)->sin_addr.s_addr);
            loop = (ip >> 24) == 127;
        } else if (a->ai_family == AF_INET6) {
            loop = IN6_IS_ADDR_LOOPBACK(&((const struct sockaddr_in6 *)a->ai_addr)->sin6_addr);
        } else {
            loop = 0;
        }
    }
    freeaddrinfo(res);
    return loop;
}

static int exposure_check(const Config *cfg, char *err) {
    if (cfg->n_api_keys > 0 || cfg->allow_anonymous || all_loopback(cfg->listen.host) != 0)
        return 0;
    return sm_err(err, -EPERM,
                  "refusing to serve %s:%d (not loopback) without API keys: set --api-keys "
                  "KEY:write or --api-key-file PATH, or pass --allow-anonymous if anyone may "
                  "enroll and delete",
                  *cfg->listen.host ? cfg->listen.host : "*", cfg->listen.port);
}

/* Writes a new random key to path, never replacing a file already there.
 * Returns 0 with key filled, SM_ABSENT if another process created path first,
 * or -errno. */
static int key_create(const char *path, char *key, char *err) {
    unsigned char raw[KEY_BYTES];
    char tmp[4200];
    if (getrandom(raw, sizeof raw, 0) != (ssize_t)sizeof raw)
        return sm_err(err, -EIO, "getrandom: %s", strerror(errno));
    for (int i = 0; i < KEY_BYTES; i++)
        snprintf(key + 2 * i, 3, "%02x", raw[i]);
    explicit_bzero(raw, sizeof raw);
    if (snprintf(tmp, sizeof tmp, "%s.tmp.%ld", path, (long)getpid()) >= (int)sizeof tmp)
        return sm_err(err, -ENAMETOOLONG, "%s: path too long", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
    if (fd < 0)
        return sm_err(err, -errno, "cannot create %s: %s", path, strerror(errno));
    size_t len = strlen(key);
    key[len] = '\n';
    int ok = write(fd, key, len + 1) == (ssize_t)(len + 1) && fsync(fd) == 0;
    int e = errno;
    key[len] = 0;
    close(fd);
    if (ok && link(tmp, path) < 0)
        e = errno, ok = 0;
    unlink(tmp);
    if (!ok && e == EEXIST)
        return SM_ABSENT;
    return ok ? 0 : sm_err(err, -e, "cannot write %s: %s", path, strerror(e));
}

/* Reads the key of path into key (KEY_FILE_MAX bytes). SM_ABSENT if there is
 * no such file. */
static int key_read(const char *path, char *key, char *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    struct stat st;
    if (stat(path, &st) < 0 && errno == ENOENT)
        return SM_ABSENT;
    int rc = sm_read_file(path, KEY_FILE_MAX - 1, &buf, &len, err);
    if (rc < 0)
        return rc;
    while (len > 0 && (buf[len - 1] == '\n' || buf[len - 1] == '\r' || buf[len - 1] == ' '))
        len--;
    memcpy(key, buf, len);
    key[len] = 0;
    explicit_bzero(buf, len);
    free(buf);
    if (st.st_mode & 077)
        log_warn("siamesed: %s is readable by other users (chmod 600 it)", path);
    return 0;
}

/* The key of api_key_file, created first if missing, added to cfg->api_keys. */
static int key_file_load(Config *cfg, char *err) {
    const char *path = cfg->api_key_file;
    char key[KEY_FILE_MAX], where[4200];
    int rc = key_read(path, key, err), created = 0;
    if (rc == SM_ABSENT && cfg->n_api_keys > 0)
        return 0; /* keys of the user's own: no need for a generated one */
    if (rc == SM_ABSENT) {
        char *dir = strdup(path);
        if (!dir)
            return sm_err(err, -ENOMEM, "out of memory");
        char *slash = strrchr(dir, '/');
        if (slash && slash != dir)
            *slash = 0, rc = sm_mkdirs(dir, err);
        else
            rc = 0;
        free(dir);
        if (rc == 0)
            rc = key_create(path, key, err);
        created = rc == 0;
        if (rc == SM_ABSENT)
            rc = key_read(path, key, err); /* another start won the race */
        if (rc == SM_ABSENT)
            rc = sm_err(err, -ENOENT, "%s: vanished while being created", path);
    }
    if (rc < 0)
        return rc;
    snprintf(where, sizeof where, "api_key_file %s", path);
    rc = config_add_api_key(cfg, key, CONFIG_SCOPE_WRITE, where, err);
    if (rc == 0 && created)
        log_warn("siamesed: generated a write API key and stored it in %s (mode 0600); it is "
                 "printed only this once: %s",
                 path, key);
    else if (rc == 0)
        log_info("siamesed: write API key read from %s", path);
    explicit_bzero(key, sizeof key);
    return rc;
}

/* A missing model file over a database that holds samples is most likely a
 * mistyped --model: training a default model there (train_if_missing) would
 * strand every sample, so say which model made them instead. */
static int model_guard(const Config *cfg, char *err) {
    StoreModelCount c[1];
    int n = 0;
    if (access(cfg->model, F_OK) == 0)
        return 0;
    int rc = store_peek(cfg->db, c, 1, &n, err);
    if (rc < 0)
        return rc;
    if (rc == SM_ABSENT || n == 0)
        return 0;
    /* A URI's ? and & need quoting in the command to copy. */
    const char *q = strpbrk(cfg->db, "?&;| ") && !strchr(cfg->db, '\'') ? "'" : "";
    return sm_err(
        err, -ENOENT,
        "no model file %s, but %s holds %lld sample%s made by model %.12s: give --model "
        "the file that made them (`siamesed --info FILE` prints a file's fingerprint), or, "
        "if it is lost, train a new one with --train --out FILE and convert them with "
        "`siamesed --reembed --model FILE --db %s%s%s`; nothing was trained or changed",
        cfg->model, cfg->db, (long long)c[0].samples, c[0].samples == 1 ? "" : "s",
        c[0].fingerprint, q, cfg->db, q);
}

/* The file of setting key must hold a PEM block whose label ends in label. */
static int pem_check(const char *key, const char *path, const char *label, const char *what,
                     char *err) {
    uint8_t *buf = NULL;
    size_t len = 0;
    char end[64], why[SM_ERRMAX];
    int rc = sm_read_file(path, 1 << 20, &buf, &len, why);
    if (rc < 0)
        return sm_err(err, rc, "%s: %s", key, why);
    snprintf(end, sizeof end, "%s-----", label);
    const char *begin = strstr((char *)buf, "-----BEGIN ");
    const char *eol = begin ? strstr(begin, end) : NULL;
    if (!begin || !eol || memchr(begin, '\n', (size_t)(eol - begin)))
        rc = sm_err(err, -EINVAL, "%s %s: not a PEM %s (no -----BEGIN ...%s----- line)", key, path,
                    what, label);
    explicit_bzero(buf, len);
    free(buf);
    return rc;
}

/* Binds the listen address once (with SO_REUSEADDR, as libmicrohttpd does)
 * to tell why it cannot be used. Names that do not resolve are left to
 * http_start(), which says so. */
static int listen_probe(const ConfigAddr *a, char *err) {
    struct addrinfo hints = {.ai_family = AF_UNSPEC,
                             .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE},
                    *res = NULL;
    char port[8];
    snprintf(port, sizeof port, "%d", a->port);
    if (getaddrinfo(*a->host ? a->host : NULL, port, &hints, &res) != 0)
        return 0;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, e = 0;
    if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one) < 0 ||
        bind(fd, res->ai_addr, res->ai_addrlen) < 0)
        e = errno;
    if (fd >= 0)
        close(fd);
    freeaddrinfo(res);
    const char *host = *a->host ? a->host : "*";
    if (e == EADDRINUSE)
        return sm_err(err, -e,
                      "cannot listen on %s:%d: the port is in use (another siamesed, or another "
                      "service): stop it or choose another port with --listen",
                      host, a->port);
    if (e == EACCES)
        return sm_err(err, -e,
                      "cannot listen on %s:%d: permission denied (ports below 1024 need root or "
                      "CAP_NET_BIND_SERVICE)",
                      host, a->port);
    if (e == EADDRNOTAVAIL)
        return sm_err(err, -e, "cannot listen on %s:%d: %s is not an address of this machine", host,
                      a->port, host);
    return e ? sm_err(err, -e, "cannot listen on %s:%d: %s", host, a->port, strerror(e)) : 0;
}

int serve_prepare(Config *cfg, char *err) {
    int rc = *cfg->api_key_file ? key_file_load(cfg, err) : 0;
    if (rc == 0)
        rc = exposure_check(cfg, err);
    if (rc == 0 && *cfg->tls_cert)
        rc = pem_check("tls_cert", cfg->tls_cert, "CERTIFICATE", "certificate", err);
    if (rc == 0 && *cfg->tls_key)
        rc = pem_check("tls_key", cfg->tls_key, "PRIVATE KEY", "private key", err);
    if (rc == 0)
        rc = listen_probe(&cfg->listen, err);
    if (rc == 0)
        rc = model_guard(cfg, err);
    return rc;
}
