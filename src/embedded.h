/*
 * embedded.h - the Lua sources of the `pipeline` modules, compiled into the
 * static library (the table is generated at build time by
 * cmake/embed-lua.cmake).
 */
#ifndef PIPELINE_EMBEDDED_H
#define PIPELINE_EMBEDDED_H

#include <stddef.h>

typedef struct {
  const char *module;    /* "pipeline", "pipeline.client", ... */
  const char *chunkname; /* "@pipeline/client.lua", for error messages */
  const char *code;
  size_t size;
} pipeline_embedded_module;

/* Ends with an entry whose module is NULL. */
extern const pipeline_embedded_module pipeline_embedded_modules[];

#endif
