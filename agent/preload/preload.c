/* Zero-code activation of Python processes through the dynamic loader.

   This file runs in every process that inherits LD_PRELOAD (or that
   /etc/ld.so.preload reaches): shells, ls, curl, compilers, package
   managers. It is therefore built into a tiny object of its own,
   libotelagent_preload.so, that needs nothing but libc: no C++ runtime, no
   libcurl, no OpenSSL to map. The full library carries the same constructor
   so that preloading libotelagent.so also works (at the full library's
   mapping cost).

   In a process that is not a CPython interpreter about to start, the
   constructor returns after one symbol lookup: no thread, no file, no
   output, no change to the environment. In an interpreter it puts the
   directory holding otelagent's sitecustomize.py in front of PYTHONPATH,
   before the interpreter reads it; everything else (the deny list,
   OTEL_PYTHON_DISABLED_INSTRUMENTATIONS, loading the agent) is decided in
   Python by that sitecustomize. Nothing here can fail the process: every
   failure is one line on stderr and the process runs untraced. */

#define _GNU_SOURCE
#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

/* Where the bootstrap directory is when not beside this object. */
#define BOOTSTRAP_ENV "OTELAGENT_PYTHON_BOOTSTRAP"
#define BOOTSTRAP_FILE "/sitecustomize.py"

static void say(const char *what, const char *detail) {
  dprintf(2, "otelagent: Python not activated: %s%s\n", what, detail);
}

/* uWSGI embeds the interpreter to serve applications: linked in (pip's
   uwsgi), or loaded as a plugin after main (Debian's uwsgi-core with
   python3_plugin.so, started as uwsgi, uwsgi_python3 or uwsgi-core). */
static int is_uwsgi(const char *base) {
  return strncmp(base, "uwsgi", 5) == 0;
}

enum program { OTHER, PYTHON, UWSGI };

/* What a process with a CPython runtime mapped is, from its executable
   (after symlinks, so a virtualenv's bin/python counts): python* or uWSGI
   are activated; other programs that link libpython to run scripts of their
   own (gdb, vim, ...) are left alone. */
static enum program python_program(void) {
  char exe[PATH_MAX];
  ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
  if (n <= 0) return OTHER;
  exe[n] = '\0';
  const char *base = strrchr(exe, '/');
  base = base ? base + 1 : exe;
  if (strncmp(base, "python", 6) == 0) return PYTHON;
  return is_uwsgi(base) ? UWSGI : OTHER;
}

/* The bootstrap directory: $OTELAGENT_PYTHON_BOOTSTRAP, else ../_bootstrap
   from the directory of the object this code is in (the Python package's
   layout: otelagent/_lib/libotelagent_preload.so and
   otelagent/_bootstrap/sitecustomize.py). Returns 0 and fills `out`. */
static int bootstrap_dir(char *out, size_t size) {
  const char *env = getenv(BOOTSTRAP_ENV);
  if (env && *env) {
    if (snprintf(out, size, "%s", env) >= (int)size) {
      say(BOOTSTRAP_ENV, " is too long");
      return -1;
    }
  } else {
    Dl_info info;
    char self[PATH_MAX];
    if (!dladdr((void *)&bootstrap_dir, &info) || !info.dli_fname ||
        !realpath(info.dli_fname, self)) {
      say("cannot find the path of ", "the preloaded object");
      return -1;
    }
    char *slash = strrchr(self, '/'); /* .../otelagent/_lib/x.so */
    if (slash) *slash = '\0';
    slash = strrchr(self, '/'); /* .../otelagent/_lib */
    if (slash) *slash = '\0';
    if (snprintf(out, size, "%s/_bootstrap", self) >= (int)size) return -1;
  }
  char file[PATH_MAX + sizeof BOOTSTRAP_FILE];
  snprintf(file, sizeof file, "%s%s", out, BOOTSTRAP_FILE);
  if (access(file, R_OK) != 0) {
    say("no bootstrap at ", file);
    return -1;
  }
  return 0;
}

/* True when an entry of the PATH-style `list` holds a copy of the bootstrap:
   this one under another spelling (a symlinked directory), or another
   install's (a venv's otelagent-instrument under a host-wide preload). Only
   one goes on the path: two copies chaining to each other's sitecustomize
   would recurse. */
static int holds_bootstrap(const char *list) {
  static const char file[] = "/_otelagent_activation.py";
  char path[PATH_MAX];
  for (const char *p = list; p && *p;) {
    const char *end = strchr(p, ':');
    size_t n = end ? (size_t)(end - p) : strlen(p);
    /* An empty entry is the current directory to Python. */
    const char *entry = n ? p : ".";
    size_t len = n ? n : 1;
    if (len + sizeof file <= sizeof path) {
      snprintf(path, sizeof path, "%.*s%s", (int)len, entry, file);
      if (access(path, F_OK) == 0) return 1;
    }
    p = end ? end + 1 : NULL;
  }
  return 0;
}

/* OTEL_SDK_DISABLED as the library reads it: "true" in any case, with
   blanks (space, tab) around it. */
static int sdk_disabled(void) {
  const char *v = getenv("OTEL_SDK_DISABLED");
  if (!v) return 0;
  while (*v == ' ' || *v == '\t') v++;
  size_t n = strlen(v);
  while (n && (v[n - 1] == ' ' || v[n - 1] == '\t')) n--;
  return n == 4 && strncasecmp(v, "true", 4) == 0;
}

/* True when the interpreter's options (before the script, -c or -m) hold
   -E or -I, which ignore PYTHONPATH, or -S, which skips site and so the
   sitecustomize: the variable would only reach the programs it starts. */
static int ignores_pythonpath(int argc, char **argv) {
  for (int i = 1; i < argc && argv[i]; i++) {
    const char *a = argv[i];
    if (a[0] != '-' || a[1] == '\0' || strcmp(a, "--") == 0) return 0;
    if (a[1] == '-') { /* --check-hash-based-pycs MODE; the others take none */
      if (strcmp(a, "--check-hash-based-pycs") == 0) i++;
      continue;
    }
    for (const char *c = a + 1; *c; c++) {
      if (*c == 'E' || *c == 'I' || *c == 'S') return 1;
      if (*c == 'c' || *c == 'm') return 0; /* the rest is the command's */
      if (*c == 'W' || *c == 'X') {         /* takes the rest, or the next argument */
        if (c[1] == '\0') i++;
        break;
      }
    }
  }
  return 0;
}

/* The bootstrap needs Python 3.9 or later; an older interpreter (2.7, a
   pyenv 3.6) is left as it is. Py_GetVersion() ("3.11.2 (main, ...") only
   formats compile-time strings, so it may be called before the runtime is
   initialised. */
static int python_supported(void) {
  const char *(*get_version)(void) = (const char *(*)(void))dlsym(RTLD_DEFAULT, "Py_GetVersion");
  if (!get_version) return 0;
  const char *v = get_version();
  char *end;
  long major = strtol(v, &end, 10);
  long minor = *end == '.' ? strtol(end + 1, NULL, 10) : 0;
  return major > 3 || (major == 3 && minor >= 9);
}

/* glibc calls ELF constructors with the program's arguments. */
__attribute__((constructor)) static void otelagent_preload_activate(int argc, char **argv,
                                                                    char **envp) {
  (void)envp;
  /* The checks every process pays, without a system call: is a CPython
     runtime mapped (in the executable, as Debian's python3 has it, or as
     libpython)? It is, before main, for an interpreter and for a program
     linking libpython. If not, is this uWSGI, which loads it later as a
     plugin (its name, as glibc took it from argv[0])? */
  int (*is_initialized)(void) = (int (*)(void))dlsym(RTLD_DEFAULT, "Py_IsInitialized");
  if (!is_initialized && !is_uwsgi(program_invocation_short_name)) return;
  /* Already running: this object was loaded by ctypes or linked into an
     extension, not preloaded; the process's environment is not ours. */
  if (is_initialized && is_initialized()) return;
  if (sdk_disabled()) return;
  if (is_initialized) {
    enum program what = python_program();
    if (what == OTHER) return;
    /* uWSGI's options are its own (-S is --set there). */
    if (what == PYTHON && ignores_pythonpath(argc, argv)) return;
    if (!python_supported()) return;
  }

  char dir[PATH_MAX];
  if (bootstrap_dir(dir, sizeof dir) != 0) return;
  const char *old = getenv("PYTHONPATH");
  if (holds_bootstrap(old)) return; /* a child of an activated process: already there */
  size_t need = strlen(dir) + (old && *old ? strlen(old) + 1 : 0) + 1;
  char *value = malloc(need);
  if (!value) {
    say("out of memory", "");
    return;
  }
  if (old && *old)
    snprintf(value, need, "%s:%s", dir, old);
  else
    snprintf(value, need, "%s", dir);
  if (setenv("PYTHONPATH", value, 1) != 0) say("cannot set PYTHONPATH", "");
  free(value);
}
