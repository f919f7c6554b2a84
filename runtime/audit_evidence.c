/* The evidence job's source, embedded from runtime/audit/evidence.py at
 * build time (the Makefile names it as a dependency of this object). */
__asm__(".section .rodata\n"
	".global pc_audit_evidence_py\n"
	".type pc_audit_evidence_py, @object\n"
	"pc_audit_evidence_py:\n"
	".incbin \"runtime/audit/evidence.py\"\n"
	".byte 0\n"
	".size pc_audit_evidence_py, . - pc_audit_evidence_py\n"
	".previous\n");
