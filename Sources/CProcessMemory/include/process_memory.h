/*
 * process_memory.h: how the project's commands ask the C allocator to keep freed memory.
 *
 * A transformer's forward pass frees and allocates activations of the same sizes, layer after
 * layer (tens of MB each for a prompt). glibc returns blocks above its mmap threshold (which it
 * raises only as large blocks are freed, up to 32 MB) and heap tops above its trim threshold to the
 * system, so the next layer's buffers fault in and zero their pages again: measured (getrusage)
 * on a 0.4 B Llama's 512-token prompt and 2 new tokens, 31-44k page faults per generation every
 * time; with this policy 12k on the first (pages touched for the first time) and none after. The
 * commands (not the libraries: that is the application's choice) keep such memory instead.
 */
#ifndef PROCESS_MEMORY_H
#define PROCESS_MEMORY_H

/* With glibc: blocks up to 32 MB (glibc's largest threshold) come from the heap and the heap is
 * trimmed only past 1 GB of free top, so freed activations are reused in place. Elsewhere:
 * nothing. Returns 1 when the policy was set. */
int process_memory_keep_freed(void);

#endif
