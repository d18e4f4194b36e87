#include "error.h"

const char *cl_strerror(int err) {
  switch (err) {
  case CL_OK:
    return "success";
#define CL_ERR_MSG(name, msg)                                                  \
  case CL_E##name:                                                             \
    return msg;
    CL_ERRNO_MAP(CL_ERR_MSG)
#undef CL_ERR_MSG
  default:
    return "unknown error";
  }
}

const char *cl_err_name(int err) {
  switch (err) {
  case CL_OK:
    return "OK";
#define CL_ERR_NAME(name, msg)                                                 \
  case CL_E##name:                                                             \
    return "E" #name;
    CL_ERRNO_MAP(CL_ERR_NAME)
#undef CL_ERR_NAME
  default:
    return "EUNKNOWN";
  }
}

int cl_err_from_wire(long code) {
  if (code > 0)
    code = -code;
  return code > CL_E_FIRST_ && code <= CL_EAUTH ? (int)code : CL_EIO;
}
