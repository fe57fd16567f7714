namespace Lowbit.Quantization.Primitives;

/// <summary>
/// OCP 8-bit floating point E5M2 (spec v1.0; torch.float8_e5m2): bit 7 sign, bits 6..2 exponent (bias 15),
/// bits 1..0 mantissa. e = 0: ±m·2^−16 (subnormals down to 2^−16); else ±(1 + m/4)·2^(e−15). IEEE specials:
/// 0x7C/0xFC are ±inf, 0x7D..0x7F and 0xFD..0xFF NaN, so the largest finite value is 0x7B = 1.75·2^15 = 57344.
/// Encode rounds to nearest even and saturates (|x| ≥ 57344, inf included, gives ±57344; torchao clamps
/// before casting, so no weight encodes as inf); NaN gives 0x7F with the input's sign bit.
/// </summary>
public static class Float8E5M2
{
    public const float MaxFinite = 57344f;

    /// <summary>The positive NaN code that Encode writes (c10's choice; 0x7D and 0x7E are NaN too).</summary>
    public const byte NaN = 0x7F;

    /// <summary>+inf (0xFC is −inf). Decoded, never encoded.</summary>
    public const byte PositiveInfinity = 0x7C;

    public static FloatX Format { get; } = new(5, 2, FloatXSpecials.Ieee);

    /// <summary>The 256 code values, indexed by code.</summary>
    public static ReadOnlySpan<float> DecodeTable => Format.DecodeTable;

    public static byte Encode(float x) => Format.Encode(x);

    public static float Decode(byte code) => Format.Decode(code);

    /// <exception cref="ArgumentException">Lengths differ.</exception>
    public static void Encode(ReadOnlySpan<float> x, Span<byte> codes) => Format.Encode(x, codes);

    /// <exception cref="ArgumentException">Lengths differ.</exception>
    public static void Decode(ReadOnlySpan<byte> codes, Span<float> x) => Format.Decode(codes, x);
}
