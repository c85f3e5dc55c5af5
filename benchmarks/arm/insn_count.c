/*
 * A QEMU TCG plugin counting the guest instructions a process executes (the figure
 * benchmarks/arm_check.py reports per inference). The guest marks the region to count
 * with getppid() system calls (aarch64 number 173): the count at each mark is written
 * too, so Python's start-up and the model's loading fall outside it. Built by benchmarks/arm/setup.sh for
 * Debian 12's dynamic qemu-user (7.2, plugin API version 1), whose package ships no
 * plugins. Only the few API calls used are declared here (QEMU's include/qemu/qemu-plugin.h
 * has them all). The count is inline (no callback per block), added per translated block
 * executed; with several guest threads the additions may race (kdtf runs LiteRT with one).
 *
 *   gcc -shared -fPIC -O2 -o libinsn_count.so insn_count.c
 *   qemu-aarch64 -plugin ./libinsn_count.so,out=FILE ...
 *   # writes "instructions N" and "marks M1 M2 ..." (the count at each getppid) to FILE
 */
#include <inttypes.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

typedef uint64_t plugin_id;
struct qemu_plugin_tb;
typedef struct {
    const char *target_name;
    struct { int min; int cur; } version;
    bool system_emulation;
} plugin_info;  /* the leading fields of qemu_info_t */

#define EXPORT __attribute__((visibility("default")))
EXPORT int qemu_plugin_version = 1;

void qemu_plugin_register_vcpu_tb_trans_cb(plugin_id id, void (*cb)(plugin_id, struct qemu_plugin_tb *));
void qemu_plugin_register_vcpu_tb_exec_inline(struct qemu_plugin_tb *tb, int op, void *ptr, uint64_t imm);
size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
void qemu_plugin_register_atexit_cb(plugin_id id, void (*cb)(plugin_id, void *), void *userdata);
typedef void (*syscall_cb)(plugin_id, unsigned int, int64_t, uint64_t, uint64_t, uint64_t, uint64_t,
                           uint64_t, uint64_t, uint64_t, uint64_t);
void qemu_plugin_register_vcpu_syscall_cb(plugin_id id, syscall_cb cb);

#define MARK_SYSCALL 173  /* getppid on aarch64 */
#define MAX_MARKS 64
static uint64_t executed;
static uint64_t marks[MAX_MARKS];
static int n_marks;
static char out_path[4096];

static void on_translate(plugin_id id, struct qemu_plugin_tb *tb)
{
    (void)id;
    /* op 0: QEMU_PLUGIN_INLINE_ADD_U64 */
    qemu_plugin_register_vcpu_tb_exec_inline(tb, 0, &executed, qemu_plugin_tb_n_insns(tb));
}

static void on_syscall(plugin_id id, unsigned int vcpu, int64_t num, uint64_t a1, uint64_t a2, uint64_t a3,
                       uint64_t a4, uint64_t a5, uint64_t a6, uint64_t a7, uint64_t a8)
{
    (void)id; (void)vcpu; (void)a1; (void)a2; (void)a3; (void)a4; (void)a5; (void)a6; (void)a7; (void)a8;
    if (num == MARK_SYSCALL && n_marks < MAX_MARKS) {
        marks[n_marks++] = executed;
    }
}

static void on_exit_(plugin_id id, void *userdata)
{
    (void)id; (void)userdata;
    FILE *f = out_path[0] ? fopen(out_path, "w") : stderr;
    if (!f) return;
    fprintf(f, "instructions %" PRIu64 "\nmarks", executed);
    for (int i = 0; i < n_marks; i++) {
        fprintf(f, " %" PRIu64, marks[i]);
    }
    fprintf(f, "\n");
    if (f != stderr) fclose(f);
}

EXPORT int qemu_plugin_install(plugin_id id, const plugin_info *info, int argc, char **argv)
{
    (void)info;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "out=", 4) == 0) {
            strncpy(out_path, argv[i] + 4, sizeof(out_path) - 1);
        }
    }
    qemu_plugin_register_vcpu_tb_trans_cb(id, on_translate);
    qemu_plugin_register_vcpu_syscall_cb(id, on_syscall);
    qemu_plugin_register_atexit_cb(id, on_exit_, NULL);
    return 0;
}
