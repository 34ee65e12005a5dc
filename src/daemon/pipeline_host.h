/* pipeline_host.h: gatehoused's module pipeline — module loading, configuration, request dispatch, reload. */
#ifndef GH_DAEMON_PIPELINE_HOST_H
#define GH_DAEMON_PIPELINE_HOST_H

#include <stddef.h>

#include <gatehouse/httpapi.h>
#include <gatehouse/module.h>

#include "config.h"

/** Creates the pipeline for cfg: loads every `module = PATH` line (file
 *  order), the names of `modules = ...`, and the built-in modules the
 *  configuration uses (authz when a site has `require`, each site's handler,
 *  log when access_log is set) from the module directory; installs the
 *  configuration after checking it. On failure err gets
 *  "FILE:LINE: [section] key: reason" and the return is GH_ECONFIG, a
 *  loader error (GH_EMODULE_ABI, GH_EMODULE_DUPLICATE, GH_ENOT_FOUND) or
 *  -errno. A config without pipeline sites still gets an (empty) pipeline.
 *  Main thread, before gh_server_start. */
int gh_daemon_pipeline_new(const gh_daemon_config_t *cfg, gh_pipeline_t **ret_pl, char *err,
                           size_t err_len);

/** The module directory the daemon uses for cfg: `[server] module_dir`, else
 *  the build tree's modules/ when gatehoused runs from a meson build
 *  directory, else GH_MODULE_DIR. Static or borrowed from cfg. */
const char *gh_daemon_module_dir(const gh_daemon_config_t *cfg);

/** SIGHUP: applies newcfg's pipeline part (module keys, require, root,
 *  impersonate, handlers among the loaded modules, access_log) to pl; new
 *  requests use it, running ones keep theirs; the log module reopens its
 *  file. Keys that need a restart (listeners, sites, auth, limits, modules)
 *  are logged as such. Returns 0, or GH_ECONFIG with err (the old
 *  configuration stays). Main thread. */
int gh_daemon_pipeline_reload(gh_pipeline_t *pl, const gh_daemon_config_t *oldcfg,
                              const gh_daemon_config_t *newcfg, char *err, size_t err_len);

/** Runs one request of a pipeline site (site->module is its handler) through
 *  pl; the pipeline completes it. Worker thread, at base. */
void gh_daemon_pipeline_run(gh_request_t *req, const gh_site_t *site, gh_pipeline_t *pl);

#endif
