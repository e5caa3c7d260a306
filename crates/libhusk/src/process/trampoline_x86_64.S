# The exec trampoline (see trampoline.rs). Assembled with:
#   as --64 -o t.o trampoline_x86_64.S && objcopy -O binary -j .text t.o t.bin
# and its bytes are CODE in trampoline.rs (a unit test re-assembles and compares).
# argv = [[mode]report_fd, path, arg0, ...]; envp passed through. mode: none (exec), 'f' (fork
# with CLONE_PARENT, the child execs), 't' (as 'f', the child takes fd 0 as its terminal).
	.intel_syntax noprefix
	.text
	.globl _start
_start:
	mov	rbx, rsp
	mov	r14, [rbx]
	cmp	r14, 3
	jb	bad
	mov	rsi, [rbx+8]
	xor	r15d, r15d
	movzx	eax, byte ptr [rsi]
	cmp	eax, 102
	je	moded
	cmp	eax, 116
	jne	digits
moded:
	mov	r15d, eax
	inc	rsi
digits:
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
	test	r15d, r15d
	jz	exec
	mov	eax, 56
	mov	edi, 0x8011
	xor	esi, esi
	xor	edx, edx
	xor	r10d, r10d
	xor	r8d, r8d
	syscall
	test	rax, rax
	js	clonefail
	jnz	forked
	cmp	r15d, 116
	jne	exec
	mov	eax, 112
	syscall
	test	rax, rax
	js	fail
	mov	eax, 16
	xor	edi, edi
	mov	esi, 0x540e
	xor	edx, edx
	syscall
	test	rax, rax
	js	fail
exec:
	mov	rdi, [rbx+16]
	lea	rsi, [rbx+24]
	lea	rdx, [rbx+r14*8+16]
	mov	eax, 59
	syscall
fail:
	neg	eax
	mov	edi, 126
	cmp	eax, 2
	jne	1f
	mov	edi, 127
1:	mov	ecx, 7
	jmp	send
clonefail:
	neg	eax
	mov	edi, 126
	mov	ecx, 11
	jmp	send
forked:
	xor	edi, edi
	mov	ecx, 6
send:
	mov	r13d, edi
	sub	rsp, 16
	mov	byte ptr [rsp], cl
	mov	dword ptr [rsp+1], eax
	mov	eax, 44
	mov	edi, r12d
	mov	rsi, rsp
	mov	edx, 5
	mov	r10d, 0x4000
	xor	r8d, r8d
	xor	r9d, r9d
	syscall
	mov	edi, r13d
	mov	eax, 231
	syscall
bad:
	mov	edi, 126
	mov	eax, 231
	syscall
