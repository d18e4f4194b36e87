/* placeholder: being written */ typedef int cl_placeholder_t;
int main(void) { return 0; }
