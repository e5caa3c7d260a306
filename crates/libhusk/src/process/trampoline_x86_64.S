# The exec trampoline (see trampoline.rs). Assembled with:
#   as --64 -o t.o trampoline_x86_64.S && objcopy -O binary -j .text t.o t.bin
# and its bytes are CODE in trampoline.rs (a unit test re-assembles and compares).
# argv = [report_fd, path, arg0, ...]; envp passed through.
	.intel_syntax noprefix
	.text
	.globl _start
_start:
	mov	rbx, rsp
	mov	r14, [rbx]
	cmp	r14, 3
	jb	bad
	mov	rsi, [rbx+8]
	xor	r12d, r12d
	cmp	byte ptr [rsi], 0
	je	bad
parse:
	movzx	eax, byte ptr [rsi]
	test	eax, eax
	jz	parsed
	sub	eax, 48
	cmp	eax, 9
	ja	bad
	imul	r12d, r12d, 10
	add	r12d, eax
	cmp	r12d, 0x100000
	ja	bad
	inc	rsi
	jmp	parse
parsed:
	mov	eax, 72
	mov	edi, r12d
	mov	esi, 2
	mov	edx, 1
	syscall
	test	rax, rax
	js	fail
	mov	rdi, [rbx+16]
	lea	rsi, [rbx+24]
	lea	rdx, [rbx+r14*8+16]
	mov	eax, 59
	syscall
fail:
	neg	eax
	mov	r13d, eax
	sub	rsp, 16
	mov	byte ptr [rsp], 7
	mov	dword ptr [rsp+1], eax
	mov	eax, 44
	mov	edi, r12d
	mov	rsi, rsp
	mov	edx, 5
	mov	r10d, 0x4000
	xor	r8d, r8d
	xor	r9d, r9d
	syscall
	mov	edi, 126
	cmp	r13d, 2
	jne	1f
	mov	edi, 127
1:	mov	eax, 231
	syscall
bad:
	mov	edi, 126
	mov	eax, 231
	syscall
