package workbook

// CRC-32 (IEEE) of a concatenation from the CRCs of its pieces, as zlib's
// crc32_combine (zlib 1.2.12's x^2^n form): crc(A‖B) is crc(A) multiplied
// by x^(8·len(B)) modulo the polynomial, plus crc(B).

const crcPoly = 0xedb88320 // the IEEE polynomial, bit-reversed

// x2nTable[k] is x^(2^k) modulo the polynomial.
var x2nTable = func() (t [32]uint32) {
	p := uint32(1) << 30 // x^1
	t[0] = p
	for n := 1; n < 32; n++ {
		p = multModP(p, p)
		t[n] = p
	}
	return t
}()

// multModP is a·b modulo the polynomial, both in the reflected form.
func multModP(a, b uint32) uint32 {
	m := uint32(1) << 31
	var p uint32
	for {
		if a&m != 0 {
			p ^= b
			if a&(m-1) == 0 {
				break
			}
		}
		m >>= 1
		if b&1 != 0 {
			b = b>>1 ^ crcPoly
		} else {
			b >>= 1
		}
	}
	return p
}

// x2nModP is x^(n·2^k) modulo the polynomial.
func x2nModP(n int64, k uint) uint32 {
	p := uint32(1) << 31 // x^0
	for n != 0 {
		if n&1 != 0 {
			p = multModP(x2nTable[k&31], p)
		}
		n >>= 1
		k++
	}
	return p
}

// CRC32Combine is the CRC-32 (IEEE) of A followed by B, given crc1 of A,
// crc2 of B and B's length in bytes.
func CRC32Combine(crc1, crc2 uint32, len2 int64) uint32 {
	if len2 <= 0 {
		return crc1
	}
	return multModP(x2nModP(len2, 3), crc1) ^ crc2
}
