# The exec trampoline (see trampoline.rs). Assembled with:
#   as --64 -o t.o trampoline_x86_64.S && objcopy -O binary -j .text t.o t.bin
# and its bytes are CODE in trampoline.rs (a unit test re-assembles and compares).
# argv = [FLAGS report_fd [',' listen_fd] [',' bpf_fd ',' seccomp_flags], path, arg0, ...];
# envp passed through. FLAGS: 'f' fork (CLONE_PARENT), the child goes on; 't' as 'f', and the
# child takes fd 0 as its controlling terminal; 'w' wait for start on listen_fd (after
# Ready/Created on report_fd); 's' load the seccomp program read from bpf_fd right before execve.
# Registers: rbx argv block, r14 argc, r15 flags (1 fork, 2 tty, 4 wait, 8 seccomp), r12 report
# fd, rbp listen fd, r13 the sync fd while waiting / the exit status when reporting;
# [rbx-8] bpf_fd, [rbx-16] seccomp_flags.
	.intel_syntax noprefix
	.text
	.globl _start
_start:
	mov	rbx, rsp
	sub	rsp, 64
	mov	r14, [rbx]
	cmp	r14, 3
	jb	bad
	mov	rsi, [rbx+8]
	xor	r15d, r15d
letters:
	movzx	eax, byte ptr [rsi]
	cmp	eax, 102
	jne	1f
	or	r15d, 1
	jmp	2f
1:	cmp	eax, 116
	jne	3f
	or	r15d, 3
	jmp	2f
3:	cmp	eax, 119
	jne	4f
	or	r15d, 4
	jmp	2f
4:	cmp	eax, 115
	jne	numbers
	or	r15d, 8
2:	inc	rsi
	jmp	letters
numbers:
	call	number
	mov	r12d, eax
	test	r15d, 4
	jz	1f
	cmp	byte ptr [rsi], 44
	jne	bad
	inc	rsi
	call	number
	mov	ebp, eax
1:	test	r15d, 8
	jz	parsed
	cmp	byte ptr [rsi], 44
	jne	bad
	inc	rsi
	call	number
	mov	dword ptr [rbx-8], eax
	cmp	byte ptr [rsi], 44
	jne	bad
	inc	rsi
	call	number
	mov	dword ptr [rbx-16], eax
parsed:
	cmp	byte ptr [rsi], 0
	jne	bad
	mov	eax, 72
	mov	edi, r12d
	mov	esi, 2
	mov	edx, 1
	syscall
	test	rax, rax
	js	fail
	test	r15d, 1
	jz	waiting
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
	test	r15d, 2
	jz	waiting
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
waiting:
	test	r15d, 4
	jz	exec
	mov	eax, 157
	mov	edi, 15
	lea	rsi, [rip+name]
	syscall
	mov	ecx, 4
	xor	eax, eax
	call	report
	test	rax, rax
	js	quit
	mov	r13d, r12d
	sub	rsp, 32
poll:
	mov	dword ptr [rsp], ebp
	mov	dword ptr [rsp+4], 1
	mov	dword ptr [rsp+8], r13d
	mov	dword ptr [rsp+12], 1
	mov	eax, 7
	mov	rdi, rsp
	mov	esi, 2
	mov	edx, -1
	syscall
	cmp	rax, -4
	je	poll
	test	rax, rax
	js	quit
	test	word ptr [rsp+14], 0x19
	jz	listen
	xor	eax, eax
	mov	edi, r13d
	lea	rsi, [rsp+16]
	mov	edx, 16
	syscall
	cmp	rax, -4
	je	poll
	test	rax, rax
	jle	quit
	cmp	byte ptr [rsp+16], 10
	jne	quit
	mov	r13d, -1
listen:
	test	word ptr [rsp+6], 0x19
	jz	poll
	mov	eax, 288
	mov	edi, ebp
	xor	esi, esi
	xor	edx, edx
	mov	r10d, 0x80000
	syscall
	cmp	rax, -4
	je	poll
	cmp	rax, -103
	je	poll
	test	rax, rax
	js	quit
	mov	r8d, eax
	xor	eax, eax
	mov	edi, r8d
	lea	rsi, [rsp+16]
	mov	edx, 1
	syscall
	cmp	rax, 1
	je	started
	mov	eax, 3
	mov	edi, r8d
	syscall
	jmp	poll
started:
	mov	eax, 3
	mov	edi, ebp
	syscall
	mov	r12d, r8d
exec:
	test	r15d, 8
	jz	1f
	sub	rsp, 32784
	xor	eax, eax
	mov	edi, dword ptr [rbx-8]
	lea	rsi, [rsp+16]
	mov	edx, 32768
	syscall
	test	rax, rax
	jle	seccompfail
	shr	eax, 3
	mov	word ptr [rsp], ax
	lea	rax, [rsp+16]
	mov	qword ptr [rsp+8], rax
	mov	eax, 3
	mov	edi, dword ptr [rbx-8]
	syscall
	mov	eax, 317
	mov	edi, 1
	mov	esi, dword ptr [rbx-16]
	mov	rdx, rsp
	syscall
	test	rax, rax
	js	seccompfail
1:	mov	rdi, [rbx+16]
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
seccompfail:
	neg	eax
	jnz	1f
	mov	eax, 22
1:	mov	edi, 126
	mov	ecx, 12
	jmp	send
forked:
	xor	edi, edi
	mov	ecx, 6
send:
	mov	r13d, edi
	call	report
	mov	edi, r13d
	mov	eax, 231
	syscall
quit:
	mov	edi, 1
	mov	eax, 231
	syscall
bad:
	mov	edi, 126
	mov	eax, 231
	syscall
report:
	sub	rsp, 24
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
	add	rsp, 24
	ret
number:
	xor	eax, eax
	movzx	ecx, byte ptr [rsi]
	sub	ecx, 48
	cmp	ecx, 9
	ja	bad
1:	imul	eax, eax, 10
	add	eax, ecx
	cmp	eax, 0x100000
	ja	bad
	inc	rsi
	movzx	ecx, byte ptr [rsi]
	sub	ecx, 48
	cmp	ecx, 9
	jbe	1b
	ret
name:
	.asciz	"husk-init"
