/*
 * Service-manager notifications (systemd's sd_notify protocol, Type=notify). Without
 * $NOTIFY_SOCKET every call does nothing. The only file that includes <systemd/sd-daemon.h>.
 */
#ifndef PROXY_NOTIFY_H
#define PROXY_NOTIFY_H

/* READY=1 with a STATUS= line: the workers listen (start-up, or a reload finished). */
void notify_ready(const char *status);
/* RELOADING=1 with MONOTONIC_USEC= (the time the reload began) and a STATUS= line. */
void notify_reloading(const char *status);
/* STOPPING=1 with a STATUS= line. */
void notify_stopping(const char *status);
/* A STATUS= line alone. */
void notify_status(const char *status);

#endif
