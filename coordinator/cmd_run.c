/* placeholder: being written */ typedef int cl_placeholder_t;
