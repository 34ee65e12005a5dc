/* common.h: export macro and small shared definitions of the public API. */
#ifndef GATEHOUSE_COMMON_H
#define GATEHOUSE_COMMON_H

#include <stddef.h>
#include <stdint.h>

#if defined(GH_BUILDING_LIBRARY)
#define GH_EXPORT __attribute__((visibility("default")))
#else
#define GH_EXPORT
#endif

#define GH_VERSION_MAJOR 0
#define GH_VERSION_MINOR 1
#define GH_VERSION_PATCH 0
#define GH_VERSION_STRING "0.1.0"

#endif
