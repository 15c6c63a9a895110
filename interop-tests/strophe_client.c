/* A scriptable libstrophe client for the end-to-end tests.
 *
 * It logs in, then relays: every line read on stdin is sent as raw XML, and
 * everything the server sends is printed on stdout, one line per event:
 *   CONNECTED <bound jid>
 *   STANZA <xml>
 *   STREAM-ERROR <condition> <xml>
 *   CERTFAIL <reason>
 *   DISCONNECTED <error code>
 *   TIMEOUT
 * Closing stdin ends the stream politely. Exit status: 0 after a disconnect we
 * asked for, 1 on timeout, 2 when the connection never came up, 3 when the
 * server ended a session we did not ask to end. libstrophe's own debug log
 * goes to stderr.
 */
#define _POSIX_C_SOURCE 200809L

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <strophe.h>

enum exit_status {
  EXIT_CLEAN = 0,
  EXIT_TIMEOUT = 1,
  EXIT_NEVER_CONNECTED = 2,
  EXIT_ENDED_BY_SERVER = 3,
  EXIT_USAGE = 64,
};

struct options {
  const char *jid;
  const char *password;
  const char *host;
  unsigned short port;
  int direct_tls;
  const char *cafile;
  double timeout_seconds;
};

struct session {
  xmpp_ctx_t *ctx;
  xmpp_conn_t *conn;
  int connected;
  int finished;
  int disconnect_requested;
  int exit_status;
  char line[1 << 20];
  size_t line_length;
  int stdin_open;
};

static const char *const stream_error_names[] = {
    [XMPP_SE_BAD_FORMAT] = "bad-format",
    [XMPP_SE_BAD_NS_PREFIX] = "bad-namespace-prefix",
    [XMPP_SE_CONFLICT] = "conflict",
    [XMPP_SE_CONN_TIMEOUT] = "connection-timeout",
    [XMPP_SE_HOST_GONE] = "host-gone",
    [XMPP_SE_HOST_UNKNOWN] = "host-unknown",
    [XMPP_SE_IMPROPER_ADDR] = "improper-addressing",
    [XMPP_SE_INTERNAL_SERVER_ERROR] = "internal-server-error",
    [XMPP_SE_INVALID_FROM] = "invalid-from",
    [XMPP_SE_INVALID_ID] = "invalid-id",
    [XMPP_SE_INVALID_NS] = "invalid-namespace",
    [XMPP_SE_INVALID_XML] = "invalid-xml",
    [XMPP_SE_NOT_AUTHORIZED] = "not-authorized",
    [XMPP_SE_POLICY_VIOLATION] = "policy-violation",
    [XMPP_SE_REMOTE_CONN_FAILED] = "remote-connection-failed",
    [XMPP_SE_RESOURCE_CONSTRAINT] = "resource-constraint",
    [XMPP_SE_RESTRICTED_XML] = "restricted-xml",
    [XMPP_SE_SEE_OTHER_HOST] = "see-other-host",
    [XMPP_SE_SYSTEM_SHUTDOWN] = "system-shutdown",
    [XMPP_SE_UNDEFINED_CONDITION] = "undefined-condition",
    [XMPP_SE_UNSUPPORTED_ENCODING] = "unsupported-encoding",
    [XMPP_SE_UNSUPPORTED_STANZA_TYPE] = "unsupported-stanza-type",
    [XMPP_SE_UNSUPPORTED_VERSION] = "unsupported-version",
    [XMPP_SE_XML_NOT_WELL_FORMED] = "not-well-formed",
};

static void usage(const char *program) {
  fprintf(stderr,
          "usage: %s --jid JID --password PW --host ADDR --port N --tls starttls|direct\n"
          "          --cafile CA.pem [--timeout SECONDS]\n",
          program);
}

static int parse_options(int argc, char **argv, struct options *options) {
  options->timeout_seconds = 30;
  for (int i = 1; i < argc; i += 2) {
    const char *name = argv[i];
    if (i + 1 >= argc) {
      fprintf(stderr, "%s needs a value\n", name);
      return -1;
    }
    const char *value = argv[i + 1];
    if (strcmp(name, "--jid") == 0) {
      options->jid = value;
    } else if (strcmp(name, "--password") == 0) {
      options->password = value;
    } else if (strcmp(name, "--host") == 0) {
      options->host = value;
    } else if (strcmp(name, "--port") == 0) {
      long port = strtol(value, NULL, 10);
      if (port <= 0 || port > 65535) {
        fprintf(stderr, "bad port %s\n", value);
        return -1;
      }
      options->port = (unsigned short)port;
    } else if (strcmp(name, "--tls") == 0) {
      if (strcmp(value, "direct") == 0) {
        options->direct_tls = 1;
      } else if (strcmp(value, "starttls") != 0) {
        fprintf(stderr, "--tls must be starttls or direct\n");
        return -1;
      }
    } else if (strcmp(name, "--cafile") == 0) {
      options->cafile = value;
    } else if (strcmp(name, "--timeout") == 0) {
      options->timeout_seconds = strtod(value, NULL);
    } else {
      fprintf(stderr, "unknown option %s\n", name);
      return -1;
    }
  }
  if (!options->jid || !options->password || !options->host || !options->port ||
      !options->cafile) {
    return -1;
  }
  return 0;
}

/* One stanza per stdout line: the tests read line by line. */
static void print_flattened(const char *prefix, const char *text) {
  fputs(prefix, stdout);
  for (const char *c = text; *c; ++c) {
    fputc(*c == '\n' || *c == '\r' ? ' ' : *c, stdout);
  }
  fputc('\n', stdout);
  fflush(stdout);
}

static void print_stanza(xmpp_ctx_t *ctx, const char *prefix, xmpp_stanza_t *stanza) {
  char *text = NULL;
  size_t length = 0;
  if (xmpp_stanza_to_text(stanza, &text, &length) == XMPP_EOK) {
    print_flattened(prefix, text);
    xmpp_free(ctx, text);
  } else {
    print_flattened(prefix, "(unprintable stanza)");
  }
}

static int on_stanza(xmpp_conn_t *conn, xmpp_stanza_t *stanza, void *userdata) {
  (void)conn;
  struct session *session = userdata;
  print_stanza(session->ctx, "STANZA ", stanza);
  return 1;
}

static int on_certificate_failure(const xmpp_tlscert_t *cert, const char *reason) {
  (void)cert;
  print_flattened("CERTFAIL ", reason ? reason : "unknown");
  return 0;
}

static void on_connection(xmpp_conn_t *conn, xmpp_conn_event_t event, int error,
                          xmpp_stream_error_t *stream_error, void *userdata) {
  struct session *session = userdata;
  if (event == XMPP_CONN_CONNECT) {
    session->connected = 1;
    print_flattened("CONNECTED ", xmpp_conn_get_bound_jid(conn));
    return;
  }
  if (stream_error) {
    const size_t known = sizeof stream_error_names / sizeof stream_error_names[0];
    const char *name = (size_t)stream_error->type < known && stream_error_names[stream_error->type]
                           ? stream_error_names[stream_error->type]
                           : "unknown";
    char prefix[64];
    snprintf(prefix, sizeof prefix, "STREAM-ERROR %s ", name);
    if (stream_error->stanza) {
      print_stanza(session->ctx, prefix, stream_error->stanza);
    } else {
      print_flattened(prefix, "");
    }
  }
  printf("DISCONNECTED %d\n", error);
  fflush(stdout);
  if (!session->connected) {
    session->exit_status = EXIT_NEVER_CONNECTED;
  } else if (!session->disconnect_requested) {
    session->exit_status = EXIT_ENDED_BY_SERVER;
  }
  session->finished = 1;
}

static void send_line(struct session *session) {
  session->line[session->line_length] = '\0';
  if (session->line_length > 0 && session->connected) {
    xmpp_send_raw(session->conn, session->line, session->line_length);
  }
  session->line_length = 0;
}

/* Feeds whatever stdin has now to the connection, without blocking. */
static void pump_stdin(struct session *session) {
  struct pollfd input = {.fd = STDIN_FILENO, .events = POLLIN};
  while (session->stdin_open && session->connected && poll(&input, 1, 0) > 0) {
    char chunk[65536];
    ssize_t got = read(STDIN_FILENO, chunk, sizeof chunk);
    if (got < 0 && errno == EINTR) {
      continue;
    }
    if (got <= 0) {
      session->stdin_open = 0;
      send_line(session);
      session->disconnect_requested = 1;
      xmpp_disconnect(session->conn);
      return;
    }
    for (ssize_t i = 0; i < got; ++i) {
      if (chunk[i] == '\n') {
        send_line(session);
      } else if (session->line_length + 1 < sizeof session->line) {
        session->line[session->line_length++] = chunk[i];
      }
    }
  }
}

static double now_seconds(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (double)now.tv_sec + (double)now.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  struct options options = {0};
  if (parse_options(argc, argv, &options) != 0) {
    usage(argv[0]);
    return EXIT_USAGE;
  }

  static struct session session;
  session.stdin_open = 1;
  session.exit_status = EXIT_CLEAN;

  xmpp_initialize();
  xmpp_log_t *log = xmpp_get_default_logger(XMPP_LEVEL_DEBUG);
  session.ctx = xmpp_ctx_new(NULL, log);
  session.conn = xmpp_conn_new(session.ctx);
  xmpp_conn_set_flags(session.conn,
                      XMPP_CONN_FLAG_DISABLE_SM | (options.direct_tls ? XMPP_CONN_FLAG_LEGACY_SSL
                                                                      : XMPP_CONN_FLAG_MANDATORY_TLS));
  xmpp_conn_set_jid(session.conn, options.jid);
  xmpp_conn_set_pass(session.conn, options.password);
  xmpp_conn_set_cafile(session.conn, options.cafile);
  xmpp_conn_set_certfail_handler(session.conn, on_certificate_failure);
  xmpp_handler_add(session.conn, on_stanza, NULL, NULL, NULL, &session);

  int status;
  if (xmpp_connect_client(session.conn, options.host, options.port, on_connection, &session) !=
      XMPP_EOK) {
    puts("DISCONNECTED connect-failed");
    status = EXIT_NEVER_CONNECTED;
  } else {
    const double deadline = now_seconds() + options.timeout_seconds;
    while (!session.finished && now_seconds() < deadline) {
      xmpp_run_once(session.ctx, 20);
      pump_stdin(&session);
    }
    if (!session.finished) {
      puts("TIMEOUT");
      session.exit_status = EXIT_TIMEOUT;
    }
    status = session.exit_status;
  }
  fflush(stdout);

  xmpp_conn_release(session.conn);
  xmpp_ctx_free(session.ctx);
  xmpp_shutdown();
  return status;
}
