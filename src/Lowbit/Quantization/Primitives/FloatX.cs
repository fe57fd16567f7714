using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;

namespace Lowbit.Quantization.Primitives;

/// <summary>Which codes of a small float format are not finite numbers.</summary>
public enum FloatXSpecials
{
    /// <summary>Every code is a finite number (torchao's fp6/fp4, the MX convention): the all-ones exponent is
    /// an ordinary binade, so the largest magnitude is 2^(2^E − 1 − bias)·(2 − 2^−M).</summary>
    None,

    /// <summary>Only S.1111.111 is NaN (OCP FP8 E4M3, torch.float8_e4m3fn): no infinities, max 448.</summary>
    NanOnly,

    /// <summary>IEEE-like: exponent all ones with mantissa 0 is ±inf, any other mantissa NaN (OCP FP8 E5M2,
    /// torch.float8_e5m2): max 57344.</summary>
    Ieee,
}

/// <summary>
/// A sign/exponent/mantissa float of 1 + E + M ≤ 8 bits, held in the low bits of a byte: code =
/// s·2^(E+M) | e·2^M | m. Value: e = 0 → (−1)^s·m·2^(1 − bias − M) (subnormal), else
/// (−1)^s·(1 + m/2^M)·2^(e − bias), with bias = 2^(E−1) − 1; <see cref="Specials"/> says which codes are
/// NaN/inf instead.
/// <para>Encoding is exact round-to-nearest-even of the float32 input, then saturation: a magnitude at or
/// above <see cref="MaxFinite"/> (inf included) encodes as ±MaxFinite, as torchao clamps before the cast
/// (<c>_quantize_affine_float8</c>) and as <c>_f32_to_floatx_unpacked</c> in
/// torchao/prototype/custom_fp_utils.py does. NaN encodes as the format's NaN with the input's sign bit
/// (c10's Float8 casts give 0x7F|sign for both FP8 formats); a format without NaN throws.</para>
/// <para>Decoding is a lookup in <see cref="DecodeTable"/> (2^(1+E+M) floats, exact: every code is a
/// float32).</para>
/// <para>The fpx formats match torchao/prototype/custom_fp_utils.py (<c>_f32_to_floatx_unpacked</c>,
/// <c>_floatx_unpacked_to_f32</c>): bias 2^(E−1) − 1, no inf/NaN codes, ties to even, saturation to ±max with
/// the sign kept, subnormals by exact rounding to the grid m·2^(1−bias−M), −0 kept. Where torchao turns a
/// NaN into an unspecified code, Encode throws.</para>
/// <para>Packed storage (<see cref="Pack"/>): the codes as a <see cref="BitPacking"/> stream of Bits-bit
/// elements, so FP6 holds 4 codes in 3 bytes, code 4k+j at bits [6j, 6j+6) of the 24-bit little-endian word
/// bytes 3k..3k+2: byte0 = c0 | c1&lt;&lt;6, byte1 = c1&gt;&gt;2 | c2&lt;&lt;4, byte2 = c2&gt;&gt;4 | c3&lt;&lt;2; FP4 holds code 2k
/// in the low nibble of byte k (as torchao's MX <c>pack_uint4</c>). This is not torchao's FP6-LLM tensor-core
/// layout (<c>_pack_tc_fp6</c>), which a GPU kernel would need as a layout type of its own.</para>
/// </summary>
public sealed class FloatX
{
    /// <summary>FP6 E3M2 (torchao FpxWeightOnlyConfig(3, 2), the FP6-LLM format): max 28, min subnormal 2^−4.</summary>
    public static readonly FloatX Fp6E3M2 = new(3, 2);

    /// <summary>FP6 E2M3 (MX): max 7.5, min subnormal 2^−3.</summary>
    public static readonly FloatX Fp6E2M3 = new(2, 3);

    /// <summary>FP4 E2M1 (MX): values 0, 0.5, 1, 1.5, 2, 3, 4, 6 and their negatives.</summary>
    public static readonly FloatX Fp4E2M1 = new(2, 1);

    private readonly float[] _table = new float[256]; // indexed by any byte; codes past 2^Bits are never read
    private readonly uint _maxFiniteBits; // float32 bits of MaxFinite
    private readonly uint _minNormalBits; // float32 bits of 2^(1 − bias)
    private readonly float _subnormalScale; // 2^(bias − 1 + M): x·this is the subnormal code, before rounding
    private readonly int _maxCode; // the magnitude code of MaxFinite
    private readonly int _nanCode; // the positive NaN code, −1 if none

    /// <summary>A format with every code finite, as torchao's FpxWeightOnlyConfig(ebits, mbits) uses.</summary>
    /// <exception cref="ArgumentOutOfRangeException">E &lt; 1, M &lt; 0 or 1 + E + M &gt; 8.</exception>
    public FloatX(int exponentBits, int mantissaBits)
        : this(exponentBits, mantissaBits, FloatXSpecials.None)
    {
    }

    internal FloatX(int exponentBits, int mantissaBits, FloatXSpecials specials)
    {
        if (exponentBits < 1 || exponentBits > 7 || mantissaBits < 0 || 1 + exponentBits + mantissaBits > 8)
            throw new ArgumentOutOfRangeException(nameof(exponentBits), $"FloatX: E{exponentBits}M{mantissaBits} is not a 1 + E + M ≤ 8 bit float with E ≥ 1 and M ≥ 0.");
        if (specials != FloatXSpecials.None && 1 + exponentBits + mantissaBits != 8)
            throw new ArgumentOutOfRangeException(nameof(specials), $"FloatX: {specials} is defined for 8-bit formats only.");
        ExponentBits = exponentBits;
        MantissaBits = mantissaBits;
        Specials = specials;
        Bias = (1 << (exponentBits - 1)) - 1;
        int top = (1 << (exponentBits + mantissaBits)) - 1;
        (_maxCode, _nanCode) = specials switch
        {
            FloatXSpecials.NanOnly => (top - 1, top),
            FloatXSpecials.Ieee => (top - (1 << mantissaBits), top),
            _ => (top, -1),
        };
        for (int c = 0; c < CodeCount; c++)
            _table[c] = Value(c);
        MaxFinite = _table[_maxCode];
        _maxFiniteBits = BitConverter.SingleToUInt32Bits(MaxFinite);
        _minNormalBits = BitConverter.SingleToUInt32Bits(MathF.ScaleB(1f, 1 - Bias));
        _subnormalScale = MathF.ScaleB(1f, Bias - 1 + mantissaBits);
    }

    public int ExponentBits { get; }

    public int MantissaBits { get; }

    public FloatXSpecials Specials { get; }

    /// <summary>2^(E−1) − 1.</summary>
    public int Bias { get; }

    /// <summary>1 + E + M: the width of one code.</summary>
    public int Bits => 1 + ExponentBits + MantissaBits;

    /// <summary>2^Bits.</summary>
    public int CodeCount => 1 << Bits;

    /// <summary>The largest finite value: 448 (E4M3), 57344 (E5M2), 28 (E3M2), 7.5 (E2M3), 6 (E2M1).</summary>
    public float MaxFinite { get; }

    /// <summary>The value of each code, indexed by code (<see cref="CodeCount"/> entries); NaN/inf codes hold
    /// NaN/inf. The decode side of every GEMV on this format reads it.</summary>
    public ReadOnlySpan<float> DecodeTable => _table.AsSpan(0, CodeCount);

    /// <summary>Short name: "e4m3fn", "e5m2", "fp6e3m2", "fp4e2m1".</summary>
    public override string ToString() => Specials switch
    {
        FloatXSpecials.NanOnly => $"e{ExponentBits}m{MantissaBits}fn",
        FloatXSpecials.Ieee => $"e{ExponentBits}m{MantissaBits}",
        _ => $"fp{Bits}e{ExponentBits}m{MantissaBits}",
    };

    /// <summary>The code nearest to x (ties to the even code), saturated to ±<see cref="MaxFinite"/>.</summary>
    /// <exception cref="ArgumentException">x is NaN and the format has no NaN.</exception>
    public byte Encode(float x)
    {
        uint bits = BitConverter.SingleToUInt32Bits(x);
        uint sign = (bits >> 31) << (ExponentBits + MantissaBits);
        uint a = bits & 0x7FFF_FFFF;
        int magnitude;
        if (a > 0x7F80_0000)
            magnitude = _nanCode >= 0 ? _nanCode : ThrowNoNan();
        else if (a >= _maxFiniteBits)
            magnitude = _maxCode;
        else if (a >= _minNormalBits)
        {
            // Normal: keep the top M mantissa bits of a, rounding the dropped 23 − M bits half to even (a carry
            // out of the mantissa bumps the exponent, which is right), then rebias the exponent 127 → Bias.
            int shift = 23 - MantissaBits;
            uint rounded = (a + (1u << (shift - 1)) - 1 + ((a >> shift) & 1)) >> shift;
            magnitude = Math.Min((int)rounded - ((127 - Bias) << MantissaBits), _maxCode);
        }
        else
        {
            // Subnormal: the code is x/2^(1 − bias − M) rounded half to even; the scaling by a power of two is
            // exact, and a result of 2^M is the smallest normal code, also right.
            magnitude = (int)MathF.Round(BitConverter.UInt32BitsToSingle(a) * _subnormalScale, MidpointRounding.ToEven);
        }

        return (byte)(sign | (uint)magnitude);
    }

    /// <summary>codes[i] = Encode(x[i]).</summary>
    /// <exception cref="ArgumentException">Lengths differ, or a NaN in a format without NaN.</exception>
    public void Encode(ReadOnlySpan<float> x, Span<byte> codes)
    {
        CheckLengths(x.Length, codes.Length, "x", "codes");
        for (int i = 0; i < x.Length; i++)
            codes[i] = Encode(x[i]);
    }

    /// <summary>The value of one code.</summary>
    /// <exception cref="ArgumentOutOfRangeException">code ≥ 2^Bits.</exception>
    public float Decode(byte code) => code < CodeCount ? _table[code]
        : throw new ArgumentOutOfRangeException(nameof(code), code, $"{this}: codes are below {CodeCount}.");

    /// <summary>x[i] = DecodeTable[codes[i]].</summary>
    /// <exception cref="ArgumentException">Lengths differ, or a code ≥ 2^Bits.</exception>
    public void Decode(ReadOnlySpan<byte> codes, Span<float> x)
    {
        CheckLengths(codes.Length, x.Length, "codes", "x");
        ref float table = ref MemoryMarshal.GetArrayDataReference(_table); // 256 entries: any byte indexes it
        int seen = 0;
        for (int i = 0; i < codes.Length; i++)
        {
            byte c = codes[i];
            seen |= c;
            x[i] = Unsafe.Add(ref table, c);
        }

        if (seen >= CodeCount)
            ThrowCodeTooLarge(codes);
    }

    /// <summary>Bytes that <see cref="Pack"/> writes for count codes: ⌈count·Bits/8⌉.</summary>
    public int PackedLength(int count) => BitPacking.PackedLength(count, Bits);

    /// <summary>Packs codes (each &lt; 2^Bits) densely, as the type describes.</summary>
    /// <exception cref="ArgumentException">packed.Length ≠ PackedLength(codes.Length), or a code ≥ 2^Bits.</exception>
    public void Pack(ReadOnlySpan<byte> codes, Span<byte> packed) => BitPacking.Pack(codes, Bits, packed);

    /// <summary>Reads codes.Length codes from packed.</summary>
    /// <exception cref="ArgumentException">packed.Length ≠ PackedLength(codes.Length).</exception>
    public void Unpack(ReadOnlySpan<byte> packed, Span<byte> codes) => BitPacking.Unpack(packed, Bits, codes);

    /// <summary>The exact value of a code from its fields (the table is built from this).</summary>
    private float Value(int code)
    {
        int m = code & ((1 << MantissaBits) - 1);
        int e = (code >> MantissaBits) & ((1 << ExponentBits) - 1);
        float sign = (code >> (ExponentBits + MantissaBits)) != 0 ? -1f : 1f;
        int magnitude = code & ((1 << (ExponentBits + MantissaBits)) - 1);
        if (magnitude == _nanCode || (Specials == FloatXSpecials.Ieee && e == (1 << ExponentBits) - 1))
            return m == 0 && Specials == FloatXSpecials.Ieee ? sign * float.PositiveInfinity : float.NaN;
        return e == 0
            ? sign * MathF.ScaleB(m, 1 - Bias - MantissaBits)
            : sign * MathF.ScaleB((1 << MantissaBits) + m, e - Bias - MantissaBits);
    }

    internal static void CheckLengths(int inputLength, int outputLength, string input, string output)
    {
        if (inputLength != outputLength)
            throw new ArgumentException($"{input} has {inputLength} elements, {output} {outputLength}; they must match.", output);
    }

    [MethodImpl(MethodImplOptions.NoInlining)]
    private int ThrowNoNan() =>
        throw new ArgumentException($"{this}: the input holds a NaN, and this format has no NaN code (all codes finite, as torchao's fpx).");

    [MethodImpl(MethodImplOptions.NoInlining)]
    private void ThrowCodeTooLarge(ReadOnlySpan<byte> codes)
    {
        int i = 0;
        while (codes[i] < CodeCount)
            i++;
        throw new ArgumentException($"{this}: codes[{i}] = {codes[i]}, but codes of this {Bits}-bit format are below {CodeCount}.", nameof(codes));
    }
}
