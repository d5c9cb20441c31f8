#include "textflag.h"

// func Lines(p unsafe.Pointer, size uintptr)
TEXT ·Lines(SB), NOSPLIT|NOFRAME, $0-16
	MOVQ	p+0(FP), AX
	MOVQ	size+8(FP), CX
	TESTQ	AX, AX
	JZ	done
	TESTQ	CX, CX
	JZ	done
	ADDQ	AX, CX
	ANDQ	$~63, AX
loop:
	PREFETCHT0	(AX)
	ADDQ	$64, AX
	CMPQ	AX, CX
	JB	loop
done:
	RET
