/*
 * retry.h - core.retry (retry.c).
 */
#ifndef PIPELINE_RETRY_H
#define PIPELINE_RETRY_H

#include <lua.h>

/* core.retry(project_id, pipeline_id, run_id, token [, options]) */
int pipeline_retry(lua_State *L);

/* client:retry(endpoint, project_id, pipeline_id, run_id, headers [, with_info]) */
int pipeline_client_retry(lua_State *L);

#endif
