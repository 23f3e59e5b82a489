#include "trace/trace-hw_display_pvgpu.h"
