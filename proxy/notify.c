/* sd_notify messages from the master; see notify.h. */
#include "proxy/notify.h"

#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include <systemd/sd-daemon.h>

/* sd_notify() keeps $NOTIFY_SOCKET (unset_environment = 0): the master sends again at every
 * reload and stop. Workers inherit the variable but never call these functions. A failed
 * send is not an error of exshim's: the manager learns nothing, exshim goes on. */
static void
send_state(const char *state, const char *status)
{
    if (state != NULL)
        sd_notifyf(0, "%s\nSTATUS=%s", state, status);
    else
        sd_notifyf(0, "STATUS=%s", status);
}

void
notify_ready(const char *status)
{
    send_state("READY=1", status);
}

void
notify_reloading(const char *status)
{
    struct timespec ts;
    char state[64];

    clock_gettime(CLOCK_MONOTONIC, &ts);
    snprintf(state, sizeof(state), "RELOADING=1\nMONOTONIC_USEC=%llu",
             (unsigned long long)ts.tv_sec * 1000000ull + (unsigned long long)ts.tv_nsec / 1000);
    send_state(state, status);
}

void
notify_stopping(const char *status)
{
    send_state("STOPPING=1", status);
}

void
notify_status(const char *status)
{
    send_state(NULL, status);
}
