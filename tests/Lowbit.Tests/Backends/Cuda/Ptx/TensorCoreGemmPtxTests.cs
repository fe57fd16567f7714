using System.Text.RegularExpressions;
using Lowbit.Cuda.Ptx;
using Lowbit.Tensors;

namespace Lowbit.Tests.Backends.Cuda.Ptx;

/// <summary>
/// The tensor-core GEMM's PTX text (instructions, declarations, tiling rules) and its results when
/// <see cref="PtxInterpreter"/> runs it here against a float64 GEMM of the same bf16 values, at shapes
/// that cut every tile edge (m, n, k not multiples of the block tile).
/// </summary>
public sealed partial class TensorCoreGemmPtxTests
{
    public static TheoryData<int> Tiles() => new(Enumerable.Range(0, GemmTile.Candidates.Length));

    [Theory]
    [MemberData(nameof(Tiles))]
    public void Module_has_the_expected_instructions_per_k_step(int index)
    {
        var tile = GemmTile.Candidates[index];
        string ptx = TensorCoreGemmPtx.Module(tile);
        string int8Module = TensorCoreGemmPtx.Int8Module(tile);
        string gemm = Body(ptx, TensorCoreGemmPtx.GemmEntry(tile)), int8 = Body(int8Module, TensorCoreGemmPtx.Int8Entry(tile));
        // wgmma with mixed integer types needs PTX ISA 8.4: only the int8 module asks for it.
        Assert.Equal(tile.Wgmma, !ptx.Contains(TensorCoreGemmPtx.Int8Entry(tile), StringComparison.Ordinal));
        Assert.Contains(tile.Wgmma ? ".version 8.4\n.target sm_90a\n" : ".version 7.8\n.target sm_80\n", int8Module);
        int steps = tile.BlockK / 16;
        Assert.StartsWith("// Lowbit", ptx);
        Assert.All(ptx, c => Assert.True(c < 128, "the module goes to the driver as ASCII"));
        int copyTiles = tile.Wgmma ? tile.Stages - 1 : tile.Stages; // the prologue's and the loop's
        if (tile.Wgmma)
        {
            Assert.Contains(".version 8.0\n.target sm_90a\n.address_size 64", ptx);
            Assert.Equal(steps, Count(gemm, $"wgmma.mma_async.sync.aligned.m64n{tile.BlockN}k16.f32.bf16.bf16 "));
            Assert.Equal(steps, Count(int8, $"wgmma.mma_async.sync.aligned.m64n{tile.BlockN}k32.s32.s8.u8 "));
            Assert.Equal(0, Count(gemm, "ldmatrix"));
            Assert.Equal(1, Count(gemm, $"cp.async.wait_group {tile.Stages - 3};"));
            Assert.Equal(1, Count(gemm, "fence.proxy.async.shared::cta;"));
            Assert.Equal(1, Count(gemm, "wgmma.wait_group.sync.aligned 1;"));
            Assert.Equal(1, Count(gemm, "wgmma.wait_group.sync.aligned 0;"));
        }
        else
        {
            Assert.Contains(".version 7.8\n.target sm_80\n.address_size 64", ptx);
            Assert.Equal(tile.FragmentsM * tile.FragmentsN * steps, Count(gemm, "mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 "));
            Assert.Equal(tile.FragmentsM * tile.FragmentsN * steps, Count(int8, "mma.sync.aligned.m16n8k32.row.col.s32.s8.u8.s32 "));
            Assert.Equal((tile.FragmentsM + tile.FragmentsN / 2) * steps, Count(gemm, "ldmatrix.sync.aligned.m8n8.x4.shared.b16 "));
            Assert.Equal(1, Count(gemm, $"cp.async.wait_group {tile.Stages - 2};"));
        }
        Assert.Equal((tile.CopiesM + tile.CopiesN) * copyTiles, Count(gemm, "cp.async.cg.shared.global "));
        Assert.Equal(copyTiles, Count(gemm, "cp.async.commit_group;"));
        Assert.Equal(1, Count(gemm, "bar.sync 0;"));
        Assert.Equal(tile.FragmentsM * tile.FragmentsN * 4, Count(gemm, "st.global.f32 "));
        Assert.Equal(tile.FragmentsM * tile.FragmentsN * 4, Count(int8, "st.global.f32 "));
        Assert.Equal(tile.FragmentsM * tile.FragmentsN * 4, Count(int8, "cvt.rn.f32.s32 "));
        Assert.Equal(Count(gemm, "cp.async.cg.shared.global "), Count(int8, "cp.async.cg.shared.global "));
        Assert.Contains($".maxntid {tile.Threads}, 1, 1", gemm);
        Assert.Equal(4, Count(ptx, "cvt.rn.bf16x2.f32 "));
    }

    [Theory]
    [MemberData(nameof(Tiles))]
    public void Every_register_is_declared_once_before_use_and_none_is_named_like_a_special_register(int index)
    {
        var tile = GemmTile.Candidates[index];
        string ptx = TensorCoreGemmPtx.Module(tile) + (tile.Wgmma ? TensorCoreGemmPtx.Int8Module(tile) : "");
        foreach (Match entry in EntryBody().Matches(ptx))
        {
            string body = entry.Groups[1].Value;
            var declared = new HashSet<string>(StringComparer.Ordinal);
            foreach (Match d in Declaration().Matches(body))
            {
                string stem = d.Groups[1].Value;
                Assert.DoesNotContain(stem, PtxWriter.Reserved);
                var names = d.Groups[2].Success ? Enumerable.Range(0, int.Parse(d.Groups[2].Value)).Select(i => stem + i) : [stem];
                foreach (string name in names)
                    Assert.True(declared.Add(name), $"%{name} declared twice");
            }
            int firstInstruction = body.IndexOf("\tld.param", StringComparison.Ordinal);
            Assert.DoesNotContain(".reg", body[firstInstruction..]);
            foreach (Match use in RegisterUse().Matches(body[firstInstruction..]))
            {
                string name = use.Groups[1].Value;
                Assert.True(declared.Contains(name) || name is "tid.x" or "ctaid.x" or "ctaid.y", $"%{name} is used but not declared");
            }
        }
    }

    [Fact]
    public void The_writer_refuses_special_register_names()
    {
        var w = new PtxWriter();
        Assert.Throws<ArgumentException>(() => w.Reg(".b32", "tid"));
        Assert.Throws<ArgumentException>(() => w.Regs(".b32", "ctaid", 2));
        Assert.Throws<ArgumentException>(() => w.Reg(".b32", "pm3"));
        w.Reg(".b32", "lane");
        Assert.Throws<ArgumentException>(() => w.Reg(".b64", "lane"));
    }

    [Theory]
    [InlineData(64, 64, 48, 2, 2, 2)]   // BlockK not 16/32/64
    [InlineData(40, 64, 32, 2, 2, 2)]   // BlockM not a multiple of 16·WarpsM
    [InlineData(64, 48, 32, 2, 2, 2)]   // BlockN not a multiple of 16·WarpsN
    [InlineData(64, 64, 32, 2, 2, 1)]   // one stage: nothing to overlap
    [InlineData(32, 64, 16, 2, 2, 2)]   // 128 threads, 32 rows of 2 chunks: not one copy each
    [InlineData(16, 16, 64, 1, 1, 2)]   // one warp: rows of 8 chunks change swizzle between a thread's copies
    [InlineData(256, 256, 64, 4, 4, 4)] // 256 KB of shared memory
    public void Invalid_tilings_are_refused(int bm, int bn, int bk, int wm, int wn, int stages)
    {
        var e = Record.Exception(() => new GemmTile(bm, bn, bk, wm, wn, stages));
        Assert.True(e is ArgumentException, $"{bm}x{bn}x{bk} w{wm}x{wn} s{stages}: {e}");
    }

    [Theory]
    [InlineData(96, 128, 4)]  // not one or two warpgroups of 64 rows
    [InlineData(128, 264, 3)] // wider than wgmma's n = 256
    [InlineData(128, 200, 3)] // 200 rows of W do not split over 256 threads' copies
    [InlineData(128, 256, 2)] // two stages: no room to copy ahead while a wgmma runs
    [InlineData(128, 256, 5)] // 241 KB of shared memory
    public void Invalid_wgmma_tilings_are_refused(int bm, int bn, int stages)
    {
        var e = Record.Exception(() => GemmTile.ForWgmma(bm, bn, stages));
        Assert.True(e is ArgumentException, $"wgmma {bm}x{bn} s{stages}: {e}");
    }

    [Theory]
    [InlineData(512, 4096, 1)]   // 128x256 tiles: 64 blocks for 132 SMs; 128x128: 128
    [InlineData(512, 14336, 0)]  // 224 blocks
    [InlineData(2048, 4096, 0)]  // 256 blocks
    [InlineData(2048, 1024, 1)]  // 128x256: 64 blocks; 128x128: 128
    [InlineData(512, 1024, 2)]   // none fills the GPU: the narrowest
    public void Hopper_gets_the_widest_wgmma_tile_that_fills_the_sms(int m, int n, int expected)
    {
        Assert.Equal(GemmTile.HopperTiles[expected], GemmTile.For(m, n, 9, 0, 132));
        Assert.Equal(GemmTile.Default, GemmTile.For(m, n, 8, 0, 108));
        Assert.Equal(GemmTile.Default, GemmTile.For(m, n, 10, 0, 148));
    }

    [Fact]
    public void The_hopper_tiles_are_among_the_checked_candidates() =>
        Assert.All(GemmTile.HopperTiles, t => Assert.True(t.Wgmma && GemmTile.Candidates.Contains(t)));

    [Fact]
    public void Wgmma_tiles_run_on_hopper_only_and_mma_sync_tiles_from_ampere_on()
    {
        var wgmma = GemmTile.ForWgmma(128, 256, 4);
        Assert.True(wgmma.RunsOn(9, 0));
        Assert.False(wgmma.RunsOn(8, 9));
        Assert.False(wgmma.RunsOn(10, 0));
        Assert.True(GemmTile.Default.RunsOn(8, 0));
        Assert.True(GemmTile.Default.RunsOn(12, 0));
        Assert.False(GemmTile.Default.RunsOn(7, 5));
    }

    [Theory]
    [MemberData(nameof(Tiles))]
    public void The_swizzle_puts_every_ldmatrix_phase_in_eight_bank_groups_and_is_a_bijection(int index)
    {
        var tile = GemmTile.Candidates[index];
        for (int row0 = 0; row0 < tile.BlockN; row0 += 8)
        {
            for (int k = 0; k < tile.BlockK; k += 8)
            {
                var groups = Enumerable.Range(row0, 8).Select(r => tile.SharedOffset(r, k) / 16 % 8).ToHashSet();
                Assert.Equal(8, groups.Count);
            }
        }
        int rows = Math.Max(tile.BlockM, tile.BlockN);
        var offsets = new HashSet<int>();
        for (int r = 0; r < rows; r++)
        {
            for (int k = 0; k < tile.BlockK; k++)
                Assert.True(offsets.Add(tile.SharedOffset(r, k)));
        }
        Assert.Equal(rows * tile.RowBytes - 2, offsets.Max());
    }

    [Fact]
    public void The_conversion_kernel_rounds_to_nearest_even_as_the_cpu_does()
    {
        var rng = new Random(3);
        int count = 8 * 300; // two blocks, the second partly idle
        var x = new float[count];
        for (int i = 0; i < count; i++)
        {
            // Every fourth value sits exactly halfway between two bf16 values (ties go to even).
            uint bits = BitConverter.SingleToUInt32Bits((float)(rng.NextDouble() * 4 - 2));
            x[i] = i % 4 == 0 ? BitConverter.UInt32BitsToSingle(bits & 0xFFFF0000 | 0x8000) : BitConverter.UInt32BitsToSingle(bits);
        }
        var sim = new PtxInterpreter(TensorCoreGemmPtx.Module(GemmTile.Simple));
        var output = new byte[count * 2];
        ulong source = sim.Allocate(Bytes(x)), destination = sim.Allocate(output);
        sim.Launch(TensorCoreGemmPtx.ConvertEntry, (count / 8 + 255) / 256, 1, TensorCoreGemmPtx.ConvertThreads, 0, source, destination, (ulong)(count / 8));
        var expected = new ushort[count];
        DTypeConversion.FromSingle(x, DType.BF16, expected);
        Assert.Equal(expected, Enumerable.Range(0, count).Select(i => BitConverter.ToUInt16(output, 2 * i)).ToArray());
    }

    public static TheoryData<int, int, int, int, bool> Shapes() => new()
    {
        { 0, 37, 72, 40, false },   // simple: partial m and n tiles, k = one full and one partial step
        { 0, 37, 72, 40, true },
        { 0, 1, 17, 8, true },      // one row, one k chunk
        { 1, 130, 136, 72, false }, // fast: 2×2 blocks, each edge cut
        { 1, 130, 136, 72, true },
        { 1, 5, 9, 200, true },     // more k steps than stages
        { 2, 70, 33, 136, true },
        { 3, 129, 257, 48, true },
        { 4, 257, 129, 48, true },
        { 5, 131, 130, 104, true },
        { 6, 127, 140, 200, false },
        { 7, 130, 300, 136, true },
        { 8, 260, 100, 72, true },
        { 9, 130, 300, 200, false }, // wgmma 128x256: 2×2 blocks, each edge cut, k = 3 full tiles and a part
        { 9, 130, 300, 200, true },
        { 9, 3, 40, 8, true },       // one k chunk: the loop's copies are all past k
        { 10, 200, 130, 328, true }, // wgmma 128x128, 4 stages, 6 k tiles: the ring wraps
        { 11, 129, 257, 456, true }, // 6 stages
        { 12, 70, 260, 136, true },  // one warpgroup
        { 13, 131, 200, 264, true }, // n = 192
        { 14, 130, 130, 200, true }, // three stages: copies one tile ahead
        { 15, 140, 200, 392, true },
        { 16, 129, 140, 520, true },
        { 17, 70, 129, 264, true },
    };

    [Theory]
    [MemberData(nameof(Shapes))]
    public void The_gemm_matches_a_float64_gemm_of_the_same_bf16_values(int index, int m, int n, int k, bool lateCopies) =>
        CheckGemm(GemmTile.Candidates[index], m, n, k, lateCopies);

    [Fact]
    public void A_k_step_of_16_with_two_chunks_a_row_works_too() => CheckGemm(new GemmTile(64, 64, 16, 2, 2, 3), 65, 70, 56, lateCopies: true);

    private static void CheckGemm(GemmTile tile, int m, int n, int k, bool lateCopies)
    {
        var rng = new Random(m * 7919 + n * 31 + k);
        var x = new float[m * k];
        for (int i = 0; i < x.Length; i++)
            x[i] = (float)(rng.NextDouble() * 2 - 1);
        var w = new ushort[n * k];
        for (int i = 0; i < w.Length; i++)
            w[i] = DTypeConversion.SingleToBFloat16((float)(rng.NextDouble() * 2 - 1));

        var sim = new PtxInterpreter(TensorCoreGemmPtx.Module(tile)) { LateCopies = lateCopies, LateMma = lateCopies, Seed = m + n };
        var y = new byte[m * n * 4];
        ulong xAddress = sim.Allocate(Bytes(x)), xBf16 = sim.Allocate(new byte[m * k * 2]);
        ulong wAddress = sim.Allocate(w.SelectMany(BitConverter.GetBytes).ToArray()), yAddress = sim.Allocate(y);
        sim.Launch(TensorCoreGemmPtx.ConvertEntry, (m * k / 8 + 255) / 256, 1, TensorCoreGemmPtx.ConvertThreads, 0, xAddress, xBf16, (ulong)(m * k / 8));
        var (gx, gy) = tile.Grid(m, n);
        sim.Launch(TensorCoreGemmPtx.GemmEntry(tile), gx, gy, tile.Threads, tile.SharedBytes, xBf16, wAddress, yAddress, (ulong)m, (ulong)n, (ulong)k);

        var xr = new ushort[x.Length];
        DTypeConversion.FromSingle(x, DType.BF16, xr);
        for (int r = 0; r < m; r++)
        {
            for (int c = 0; c < n; c++)
            {
                double expected = 0;
                for (int i = 0; i < k; i++)
                    expected += (double)DTypeConversion.BFloat16ToSingle(xr[r * k + i]) * DTypeConversion.BFloat16ToSingle(w[c * k + i]);
                float actual = BitConverter.ToSingle(y, 4 * (r * n + c));
                Assert.True(Math.Abs(actual - expected) <= 1e-5 * Math.Sqrt(k), $"y[{r}, {c}] = {actual}, expected {expected}");
            }
        }
    }

    public static TheoryData<int, int, int, int> GatedShapes() => new()
    {
        { 9, 130, 150, 200 }, // 128x256: 128 gate and 128 up rows a block, every edge cut
        { 10, 70, 100, 136 }, // 128x128
        { 12, 129, 70, 264 }, // 64x256
        { 13, 40, 100, 72 },  // 128x192
        { 17, 65, 70, 72 },   // 64x128
    };

    [Theory]
    [MemberData(nameof(GatedShapes))]
    public void The_gated_product_is_silu_of_x_gate_times_x_up(int index, int m, int n, int k)
    {
        var tile = GemmTile.Candidates[index];
        Assert.True(TensorCoreGemmPtx.HasGated(tile));
        var rng = new Random(m + n + k);
        ushort[] x = Bf16Values(rng, m * k), gate = Bf16Values(rng, n * k), up = Bf16Values(rng, n * k);
        var sim = new PtxInterpreter(TensorCoreGemmPtx.Module(tile)) { LateCopies = true, LateMma = true, Seed = m };
        var y = new byte[m * n * 4];
        ulong xAt = sim.Allocate(Bytes(x)), gateAt = sim.Allocate(Bytes(gate)), upAt = sim.Allocate(Bytes(up)), yAt = sim.Allocate(y);
        sim.Launch(TensorCoreGemmPtx.GatedEntry(tile), (m + tile.BlockM - 1) / tile.BlockM, (n + tile.BlockN / 2 - 1) / (tile.BlockN / 2), tile.Threads,
            tile.SharedBytes, xAt, gateAt, upAt, yAt, (ulong)m, (ulong)n, (ulong)k);
        var actual = sim.Read(yAt, y.Length);
        for (int r = 0; r < m; r++)
        {
            for (int c = 0; c < n; c++)
            {
                double g = 0, u = 0;
                for (int i = 0; i < k; i++)
                {
                    double xi = DTypeConversion.BFloat16ToSingle(x[r * k + i]);
                    g += xi * DTypeConversion.BFloat16ToSingle(gate[c * k + i]);
                    u += xi * DTypeConversion.BFloat16ToSingle(up[c * k + i]);
                }
                double silu = g / (1 + Math.Exp(-g)), expected = silu * u;
                float got = BitConverter.ToSingle(actual, 4 * (r * n + c));
                Assert.True(Math.Abs(got - expected) <= 1e-5 * Math.Sqrt(k) * (1 + Math.Abs(u) + Math.Abs(silu)), $"y[{r}, {c}] = {got}, expected {expected}");
            }
        }
    }

    public static TheoryData<int, int, int, int, bool> Int8Shapes() => new()
    {
        { 0, 37, 72, 80, true },     // simple: partial m and n tiles, k = one full and one partial step of 64 pairs
        { 6, 130, 136, 272, false }, // Default (mma.sync 128x128x64): 2×2 blocks, each edge cut
        { 6, 130, 136, 272, true },
        { 3, 5, 70, 400, true },     // 128x256x32 mma.sync, more k steps than stages
        { 9, 130, 300, 400, true },  // wgmma 128x256: 2×2 blocks, each edge cut, k = 3 full tiles and a part
        { 9, 3, 40, 16, true },      // one k chunk
        { 10, 200, 130, 656, true }, // wgmma 128x128, 4 stages: the ring wraps
        { 17, 70, 129, 528, true },  // wgmma 64x128
    };

    /// <summary>The int8 product equals the CPU kernel's to the bit: the int32 dot of the codes and the weight's q
    /// (stored q + 128), as f32, times f32(s_x·s_w).</summary>
    [Theory]
    [MemberData(nameof(Int8Shapes))]
    public void The_int8_gemm_is_the_integer_dot_times_the_scales(int index, int m, int n, int k, bool late)
    {
        var tile = GemmTile.Candidates[index];
        var rng = new Random(m * 31 + n + k);
        var codes = Enumerable.Range(0, m * k).Select(_ => (sbyte)rng.Next(-127, 128)).ToArray();
        var q = Enumerable.Range(0, n * k).Select(_ => (sbyte)rng.Next(-128, 128)).ToArray();
        var xScales = Enumerable.Range(0, m).Select(_ => (float)(rng.NextDouble() * 0.1 + 1e-3)).ToArray();
        var wScales = Enumerable.Range(0, n).Select(_ => (float)(rng.NextDouble() * 0.01 + 1e-4)).ToArray();
        var sums = Enumerable.Range(0, m).Select(r => codes.AsSpan(r * k, k).ToArray().Sum(c => c)).ToArray();
        var sim = new PtxInterpreter(TensorCoreGemmPtx.Int8Module(tile)) { LateCopies = late, LateMma = late, Seed = m + k };
        var y = new byte[m * n * 4];
        ulong xAt = sim.Allocate(codes.Select(c => (byte)c).ToArray()), wAt = sim.Allocate(q.Select(v => (byte)(v ^ 0x80)).ToArray());
        ulong yAt = sim.Allocate(y), xScalesAt = sim.Allocate(Bytes(xScales)), sumsAt = sim.Allocate(sums.SelectMany(BitConverter.GetBytes).ToArray());
        ulong wScalesAt = sim.Allocate(Bytes(wScales));
        var (gx, gy) = tile.Grid(m, n);
        sim.Launch(TensorCoreGemmPtx.Int8Entry(tile), gx, gy, tile.Threads, tile.SharedBytes, xAt, wAt, yAt, (ulong)m, (ulong)n, (ulong)k, xScalesAt, sumsAt, wScalesAt);
        var actual = sim.Read(yAt, y.Length);
        for (int r = 0; r < m; r++)
        {
            for (int c = 0; c < n; c++)
            {
                int dot = 0;
                for (int i = 0; i < k; i++)
                    dot += codes[r * k + i] * q[c * k + i];
                float expected = dot * (xScales[r] * wScales[c]);
                Assert.Equal(expected, BitConverter.ToSingle(actual, 4 * (r * n + c)));
            }
        }
    }

    /// <summary>The gated int8 product: silu(g)·u of the two int8 products, each the CPU's integer dot times its scales.</summary>
    [Theory]
    [MemberData(nameof(GatedShapes))]
    public void The_gated_int8_product_is_silu_of_the_gate_product_times_the_up_product(int index, int m, int n, int k)
    {
        var tile = GemmTile.Candidates[index];
        k = (k + 15) / 16 * 16;
        var rng = new Random(m + n + k + 1);
        sbyte[] Codes(int count, int low) => Enumerable.Range(0, count).Select(_ => (sbyte)rng.Next(low, 128)).ToArray();
        float[] Scales(int count, double size) => Enumerable.Range(0, count).Select(_ => (float)(rng.NextDouble() * size + size / 10)).ToArray();
        sbyte[] x = Codes(m * k, -127), gate = Codes(n * k, -128), up = Codes(n * k, -128);
        float[] xScales = Scales(m, 0.02), gateScales = Scales(n, 0.002), upScales = Scales(n, 0.002);
        int[] sums = Enumerable.Range(0, m).Select(r => x.AsSpan(r * k, k).ToArray().Sum(c => c)).ToArray();
        var sim = new PtxInterpreter(TensorCoreGemmPtx.Int8Module(tile)) { LateCopies = true, LateMma = true, Seed = n };
        byte[] Stored(sbyte[] q) => q.Select(v => (byte)(v ^ 0x80)).ToArray();
        var y = new byte[m * n * 4];
        ulong xAt = sim.Allocate(x.Select(c => (byte)c).ToArray()), gateAt = sim.Allocate(Stored(gate)), upAt = sim.Allocate(Stored(up)), yAt = sim.Allocate(y);
        sim.Launch(TensorCoreGemmPtx.GatedInt8Entry(tile), (m + tile.BlockM - 1) / tile.BlockM, (n + tile.BlockN / 2 - 1) / (tile.BlockN / 2), tile.Threads,
            tile.SharedBytes, xAt, gateAt, upAt, yAt, (ulong)m, (ulong)n, (ulong)k, sim.Allocate(Bytes(xScales)),
            sim.Allocate(sums.SelectMany(BitConverter.GetBytes).ToArray()), sim.Allocate(Bytes(gateScales)), sim.Allocate(Bytes(upScales)));
        var actual = sim.Read(yAt, y.Length);
        for (int r = 0; r < m; r++)
        {
            for (int c = 0; c < n; c++)
            {
                int gd = 0, ud = 0;
                for (int i = 0; i < k; i++)
                {
                    gd += x[r * k + i] * gate[c * k + i];
                    ud += x[r * k + i] * up[c * k + i];
                }
                double g = gd * (xScales[r] * gateScales[c]), u = ud * (xScales[r] * upScales[c]);
                double expected = g / (1 + Math.Exp(-g)) * u;
                float got = BitConverter.ToSingle(actual, 4 * (r * n + c));
                Assert.True(Math.Abs(got - expected) <= 1e-5 * (1 + Math.Abs(expected)), $"y[{r}, {c}] = {got}, expected {expected}");
            }
        }
    }

    [Fact]
    public void Only_wgmma_tiles_have_the_gated_product() =>
        Assert.All(GemmTile.Candidates, t => Assert.Equal(t.Wgmma, TensorCoreGemmPtx.HasGated(t) && TensorCoreGemmPtx.Module(t).Contains(TensorCoreGemmPtx.GatedEntry(t), StringComparison.Ordinal)));

    private static ushort[] Bf16Values(Random rng, int count) =>
        Enumerable.Range(0, count).Select(_ => DTypeConversion.SingleToBFloat16((float)(rng.NextDouble() * 2 - 1))).ToArray();

    private static byte[] Bytes(ushort[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    private static byte[] Bytes(float[] values) => values.SelectMany(BitConverter.GetBytes).ToArray();

    private static int Count(string text, string what) => Regex.Count(text, Regex.Escape(what));

    /// <summary>The text of kernel <paramref name="entry"/>: from its name to the next kernel.</summary>
    private static string Body(string ptx, string entry)
    {
        string body = ptx[ptx.IndexOf(entry + "(", StringComparison.Ordinal)..];
        int next = body.IndexOf(".visible .entry", StringComparison.Ordinal);
        return next < 0 ? body : body[..next];
    }

    [GeneratedRegex(@"\.entry [^(]+\([^)]*\)[^{]*\{(.*?)\n\}", RegexOptions.Singleline)]
    private static partial Regex EntryBody();

    [GeneratedRegex(@"\.reg \.\w+ %(\w+)(?:<(\d+)>)?;")]
    private static partial Regex Declaration();

    [GeneratedRegex(@"%([A-Za-z_][\w.]*)")]
    private static partial Regex RegisterUse();
}
