namespace Lowbit.Quantization.Primitives;

/// <summary>
/// OCP 8-bit floating point E4M3 (spec v1.0; torch.float8_e4m3fn): bit 7 sign, bits 6..3 exponent (bias 7),
/// bits 2..0 mantissa. e = 0: ±m·2^−9 (subnormals down to 2^−9); else ±(1 + m/8)·2^(e−7). No infinities:
/// 0x7F and 0xFF are NaN, so the largest finite value is 0x7E = 1.75·2^8 = 448.
/// Encode rounds to nearest even and saturates (|x| ≥ 448, inf included, gives ±448; torchao clamps before
/// casting); NaN gives 0x7F with the input's sign bit. See <see cref="FloatX"/> for the exact rules.
/// </summary>
public static class Float8E4M3
{
    public const float MaxFinite = 448f;

    /// <summary>The positive NaN code (0xFF is the negative one).</summary>
    public const byte NaN = 0x7F;

    public static FloatX Format { get; } = new(4, 3, FloatXSpecials.NanOnly);

    /// <summary>The 256 code values, indexed by code (0x7F, 0xFF: NaN).</summary>
    public static ReadOnlySpan<float> DecodeTable => Format.DecodeTable;

    public static byte Encode(float x) => Format.Encode(x);

    public static float Decode(byte code) => Format.Decode(code);

    /// <exception cref="ArgumentException">Lengths differ.</exception>
    public static void Encode(ReadOnlySpan<float> x, Span<byte> codes) => Format.Encode(x, codes);

    /// <exception cref="ArgumentException">Lengths differ.</exception>
    public static void Decode(ReadOnlySpan<byte> codes, Span<float> x) => Format.Decode(codes, x);
}
