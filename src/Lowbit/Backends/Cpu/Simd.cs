using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Lowbit.Backends.Cpu;

/// <summary>
/// The few vector operations the CPU kernels use, as static abstract members so that a kernel is written
/// once, generic over <c>TS : ISimd&lt;TV&gt;</c>, and the JIT specialises and inlines it per width
/// (TensorPrimitives' operator-struct pattern). <see cref="Simd512"/>, <see cref="Simd256"/> and
/// <see cref="SimdScalar"/> (TV = float, Count = 1) are the three widths; the scalar one also runs the
/// tails of the vector loops.
/// </summary>
internal unsafe interface ISimd<TV>
    where TV : unmanaged
{
    /// <summary>Floats per vector.</summary>
    static abstract int Count { get; }

    static abstract TV Zero { get; }

    static abstract TV Broadcast(float value);

    static abstract TV Load(float* p);

    static abstract void Store(float* p, TV v);

    /// <summary>Count bf16 values widened to f32 in registers (a bf16 is the top half of an f32).</summary>
    static abstract TV LoadBf16(ushort* p);

    /// <summary>Count IEEE half values converted exactly to f32 (subnormals, inf and NaN included).</summary>
    static abstract TV LoadF16(ushort* p);

    static abstract TV Add(TV a, TV b);

    static abstract TV Subtract(TV a, TV b);

    static abstract TV Multiply(TV a, TV b);

    static abstract TV Divide(TV a, TV b);

    /// <summary>a·b + c, fused where the hardware has FMA.</summary>
    static abstract TV MultiplyAdd(TV a, TV b, TV c);

    static abstract TV Max(TV a, TV b);

    static abstract TV Exp(TV a);

    static abstract float Sum(TV v);

    /// <summary>(Σa, Σb, Σc, Σd): four horizontal sums for the price of about one (unpack-and-add
    /// transposes within 128-bit lanes, then the lanes are added).</summary>
    static abstract Vector128<float> Sum4(TV a, TV b, TV c, TV d);

    static abstract float MaxAcross(TV v);
}

/// <summary>Half to single by integer ops, since .NET 10 exposes no F16C/AVX-512 vcvtph2ps intrinsic.
/// Sign-extend the 16 bits to 32 and shift left 13: the sign lands on bit 31 (its copies on 28-30 are
/// masked off) and the 5-bit exponent and 10-bit mantissa at the bottom of an f32's exponent and mantissa.
/// Multiplying by 2^112 rebiases the exponent (15 → 127), keeps the sign, and turns half subnormals (f32
/// subnormals here) into the right normal value. A half with exponent 31 (inf/NaN) comes out at ≥ 2^16 in
/// magnitude, above every finite half (≤ 65504), and gets exponent 255 by an or: 7 operations a vector.</summary>
internal static class HalfBits
{
    public const uint Mask = 0x8FFFE000;
    public const uint F32InfBits = 0x7F800000;
    public const float Rebias = 5.192296858534828e33f; // 2^112
    public const float InfNanFrom = 65536f;
}

internal unsafe struct Simd512 : ISimd<Vector512<float>>
{
    public static int Count => Vector512<float>.Count;
    public static Vector512<float> Zero => Vector512<float>.Zero;
    public static Vector512<float> Broadcast(float value) => Vector512.Create(value);
    public static Vector512<float> Load(float* p) => Vector512.Load(p);
    public static void Store(float* p, Vector512<float> v) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadBf16(ushort* p) =>
        Vector512.ShiftLeft(Avx512F.ConvertToVector512UInt32(Vector256.Load(p)), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadF16(ushort* p)
    {
        Vector512<uint> bits = (Avx512F.ConvertToVector512Int32(Vector256.Load((short*)p)) << 13).AsUInt32() & Vector512.Create(HalfBits.Mask);
        Vector512<float> f = bits.AsSingle() * Vector512.Create(HalfBits.Rebias);
        Vector512<float> special = Vector512.GreaterThanOrEqual(Vector512.Abs(f), Vector512.Create(HalfBits.InfNanFrom));
        return Vector512.ConditionalSelect(special, f | Vector512.Create(HalfBits.F32InfBits).AsSingle(), f);
    }

    public static Vector512<float> Add(Vector512<float> a, Vector512<float> b) => a + b;
    public static Vector512<float> Subtract(Vector512<float> a, Vector512<float> b) => a - b;
    public static Vector512<float> Multiply(Vector512<float> a, Vector512<float> b) => a * b;
    public static Vector512<float> Divide(Vector512<float> a, Vector512<float> b) => a / b;
    public static Vector512<float> MultiplyAdd(Vector512<float> a, Vector512<float> b, Vector512<float> c) =>
        Vector512.FusedMultiplyAdd(a, b, c);
    public static Vector512<float> Max(Vector512<float> a, Vector512<float> b) => Vector512.Max(a, b);
    public static Vector512<float> Exp(Vector512<float> a) => Vector512.Exp(a);
    public static float Sum(Vector512<float> v) => Vector512.Sum(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector512<float> a, Vector512<float> b, Vector512<float> c, Vector512<float> d)
    {
        Vector512<float> ab = Avx512F.UnpackLow(a, b) + Avx512F.UnpackHigh(a, b); // per lane: a0+a2 b0+b2 a1+a3 b1+b3
        Vector512<float> cd = Avx512F.UnpackLow(c, d) + Avx512F.UnpackHigh(c, d);
        Vector512<float> abcd = Avx512F.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle()
            + Avx512F.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle(); // per lane: Σa Σb Σc Σd
        Vector256<float> half = abcd.GetLower() + abcd.GetUpper();
        return half.GetLower() + half.GetUpper();
    }
    public static float MaxAcross(Vector512<float> v) => Simd256.MaxAcross(Vector256.Max(v.GetLower(), v.GetUpper()));
}

internal unsafe struct Simd256 : ISimd<Vector256<float>>
{
    public static int Count => Vector256<float>.Count;
    public static Vector256<float> Zero => Vector256<float>.Zero;
    public static Vector256<float> Broadcast(float value) => Vector256.Create(value);
    public static Vector256<float> Load(float* p) => Vector256.Load(p);
    public static void Store(float* p, Vector256<float> v) => v.Store(p);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadBf16(ushort* p) => Avx2.ShiftLeftLogical(Avx2.ConvertToVector256Int32(p), 16).AsSingle();

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadF16(ushort* p)
    {
        Vector256<uint> bits = (Avx2.ConvertToVector256Int32((short*)p) << 13).AsUInt32() & Vector256.Create(HalfBits.Mask);
        Vector256<float> f = bits.AsSingle() * Vector256.Create(HalfBits.Rebias);
        Vector256<float> special = Vector256.GreaterThanOrEqual(Vector256.Abs(f), Vector256.Create(HalfBits.InfNanFrom));
        return Vector256.ConditionalSelect(special, f | Vector256.Create(HalfBits.F32InfBits).AsSingle(), f);
    }

    public static Vector256<float> Add(Vector256<float> a, Vector256<float> b) => a + b;
    public static Vector256<float> Subtract(Vector256<float> a, Vector256<float> b) => a - b;
    public static Vector256<float> Multiply(Vector256<float> a, Vector256<float> b) => a * b;
    public static Vector256<float> Divide(Vector256<float> a, Vector256<float> b) => a / b;
    public static Vector256<float> MultiplyAdd(Vector256<float> a, Vector256<float> b, Vector256<float> c) =>
        Vector256.FusedMultiplyAdd(a, b, c);
    public static Vector256<float> Max(Vector256<float> a, Vector256<float> b) => Vector256.Max(a, b);
    public static Vector256<float> Exp(Vector256<float> a) => Vector256.Exp(a);
    public static float Sum(Vector256<float> v) => Vector256.Sum(v);

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector128<float> Sum4(Vector256<float> a, Vector256<float> b, Vector256<float> c, Vector256<float> d)
    {
        Vector256<float> ab = Avx.UnpackLow(a, b) + Avx.UnpackHigh(a, b);
        Vector256<float> cd = Avx.UnpackLow(c, d) + Avx.UnpackHigh(c, d);
        Vector256<float> abcd = Avx.UnpackLow(ab.AsDouble(), cd.AsDouble()).AsSingle()
            + Avx.UnpackHigh(ab.AsDouble(), cd.AsDouble()).AsSingle();
        return abcd.GetLower() + abcd.GetUpper();
    }

    public static float MaxAcross(Vector256<float> v)
    {
        Vector128<float> m = Vector128.Max(v.GetLower(), v.GetUpper());
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(2, 3, 0, 1)));
        m = Vector128.Max(m, Vector128.Shuffle(m, Vector128.Create(1, 0, 3, 2)));
        return m.ToScalar();
    }
}

internal unsafe struct SimdScalar : ISimd<float>
{
    public static int Count => 1;
    public static float Zero => 0f;
    public static float Broadcast(float value) => value;
    public static float Load(float* p) => *p;
    public static void Store(float* p, float v) => *p = v;
    public static float LoadBf16(ushort* p) => BitConverter.Int32BitsToSingle(*p << 16);
    public static float LoadF16(ushort* p) => (float)*(Half*)p;
    public static float Add(float a, float b) => a + b;
    public static float Subtract(float a, float b) => a - b;
    public static float Multiply(float a, float b) => a * b;
    public static float Divide(float a, float b) => a / b;
    public static float MultiplyAdd(float a, float b, float c) => (a * b) + c;
    public static float Max(float a, float b) => MathF.Max(a, b);
    public static float Exp(float a) => MathF.Exp(a);
    public static float Sum(float v) => v;
    public static Vector128<float> Sum4(float a, float b, float c, float d) => Vector128.Create(a, b, c, d);
    public static float MaxAcross(float v) => v;
}
