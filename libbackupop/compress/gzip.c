/* Not written yet. */
#include "internal.h"
