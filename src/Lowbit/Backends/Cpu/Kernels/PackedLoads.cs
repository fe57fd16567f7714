using System.Runtime.CompilerServices;
using System.Runtime.Intrinsics;
using System.Runtime.Intrinsics.X86;

namespace Lowbit.Backends.Cpu.Kernels;

/// <summary>
/// Loads of packed integer weights widened to f32 lanes, one width per implementation (the companion of
/// <see cref="ISimd{TV}"/> for quantized formats): Count = TS.Count elements per call.
/// </summary>
internal unsafe interface IPackedLoads<TV>
    where TV : unmanaged
{
    /// <summary>Count int8 values, sign-extended and converted exactly to f32.</summary>
    static abstract TV LoadInt8(sbyte* p);

    /// <summary>Count bytes: their low nibbles as f32 in <paramref name="low"/> (0..15) and the whole bytes in
    /// <paramref name="whole"/> (0..255), both exact; the high nibble is (whole − low) / 16.</summary>
    static abstract void LoadUInt4(byte* p, out TV low, out TV whole);

    /// <summary>Count values of the 16-element code chunk at <paramref name="chunk"/>, lanes
    /// [lane, lane + Count): each code cut out as <paramref name="plan"/> says, then mapped to f32 by TM. The vector
    /// widths read 16 bytes at <paramref name="chunk"/> (callers make sure they exist); the scalar one reads only
    /// the code's own bytes.</summary>
    static abstract TV LoadCodes<TM>(byte* chunk, int lane, CodePlan* plan)
        where TM : ICodeMap;
}

/// <summary>AVX-512: vpmovsxbd/vpmovzxbd from 16 bytes, then vcvtdq2ps; the low nibble by vpermps into a 0..15
/// table (it reads only the index's low 4 bits: no mask, no convert).</summary>
internal unsafe struct Packed512 : IPackedLoads<Vector512<float>>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadInt8(sbyte* p) =>
        Avx512F.ConvertToVector512Single(Avx512F.ConvertToVector512Int32(Vector128.Load(p)));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadUInt4(byte* p, out Vector512<float> low, out Vector512<float> whole)
    {
        Vector512<int> v = Avx512F.ConvertToVector512Int32(Vector128.Load(p));
        low = Avx512F.PermuteVar16x32(Vector512.Create(0f, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15), v);
        whole = Avx512F.ConvertToVector512Single(v);
    }

    /// <summary>8-bit codes: vpmovsxbd. Narrower: the chunk's 16 bytes broadcast to the 4 lanes (vbroadcasti32x4;
    /// Vector512.Create(Vector128) compiles to three inserts), vpshufb puts the
    /// two bytes holding lane j's code in dword j, vpsrlvd and a mask cut it out (4 µops, no VBMI needed).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector512<float> LoadCodes<TM>(byte* chunk, int lane, CodePlan* plan)
        where TM : ICodeMap
    {
        if (TM.Bytes)
            return TM.Map(Avx512F.ConvertToVector512Int32(Vector128.Load((sbyte*)chunk)));
        Vector512<byte> bytes = Avx512BW.Shuffle(Avx512F.BroadcastVector128ToVector512((uint*)chunk).AsByte(), Vector512.Load(plan->Shuffle));
        Vector512<uint> codes = Avx512F.ShiftRightLogicalVariable(bytes.AsUInt32(), Vector512.Load(plan->Shift));
        return TM.Map((TM.MaskFree ? codes : codes & Vector512.Create(plan->Mask)).AsInt32());
    }
}

/// <summary>AVX2: vpmovsxbd/vpmovzxbd from 8 bytes, then vcvtdq2ps.</summary>
internal unsafe struct Packed256 : IPackedLoads<Vector256<float>>
{
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadInt8(sbyte* p) => Avx.ConvertToVector256Single(Avx2.ConvertToVector256Int32(p));

    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static void LoadUInt4(byte* p, out Vector256<float> low, out Vector256<float> whole)
    {
        Vector256<int> v = Avx2.ConvertToVector256Int32(p);
        low = Avx.ConvertToVector256Single(v & Vector256.Create(15));
        whole = Avx.ConvertToVector256Single(v);
    }

    /// <summary>As <see cref="Packed512.LoadCodes{TM}"/>, 8 lanes (lane 0 or 8 of the chunk).</summary>
    [MethodImpl(MethodImplOptions.AggressiveInlining)]
    public static Vector256<float> LoadCodes<TM>(byte* chunk, int lane, CodePlan* plan)
        where TM : ICodeMap
    {
        if (TM.Bytes)
            return TM.Map(Avx2.ConvertToVector256Int32((sbyte*)chunk + lane));
        Vector256<byte> bytes = Avx2.Shuffle(Avx2.BroadcastVector128ToVector256(chunk), Vector256.Load(plan->Shuffle + (4 * lane)));
        Vector256<uint> codes = Avx2.ShiftRightLogicalVariable(bytes.AsUInt32(), Vector256.Load(plan->Shift + lane));
        return TM.Map((TM.MaskFree ? codes : codes & Vector256.Create(plan->Mask)).AsInt32());
    }
}

/// <summary>One element at a time: the reference path and the tails.</summary>
internal unsafe struct PackedScalar : IPackedLoads<float>
{
    public static float LoadInt8(sbyte* p) => *p;

    public static void LoadUInt4(byte* p, out float low, out float whole)
    {
        low = *p & 15;
        whole = *p;
    }

    public static float LoadCodes<TM>(byte* chunk, int lane, CodePlan* plan)
        where TM : ICodeMap => TM.Map(TM.Bytes ? ((sbyte*)chunk)[lane] : plan->Code(chunk, lane));
}
