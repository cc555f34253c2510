/*
 * backupop — streaming, verified backups of databases and application data.
 *
 * This umbrella header includes the whole public API. The plug-in API for third-party
 * storage backends, engines and pipeline stages is in <backupop/sys/...>.
 */
#ifndef BACKUPOP_H
#define BACKUPOP_H

#include "backupop/common.h"
#include "backupop/version.h"
#include "backupop/errors.h"
#include "backupop/log.h"
#include "backupop/stage.h"
#include "backupop/io.h"
#include "backupop/compress.h"
#include "backupop/hash.h"
#include "backupop/age.h"
#include "backupop/pipeline.h"
#include "backupop/storage.h"
#include "backupop/engine.h"
#include "backupop/catalog.h"
#include "backupop/retention.h"
#include "backupop/http.h"
#include "backupop/schedule.h"
#include "backupop/k8s.h"
#include "backupop/reconcile.h"

#endif
