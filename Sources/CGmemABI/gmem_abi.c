/* The header is the target; this file only makes it a compilable C target (SwiftPM needs a
 * source) and checks that the header stands alone. */
#include "gmem_abi.h"
