namespace Lowbit.Cuda.Ptx;

/// <summary>
/// The block tiling of <see cref="TensorCoreGemmPtx"/>: a thread block computes a
/// <see cref="BlockM"/>×<see cref="BlockN"/> tile of Y, stepping K by <see cref="BlockK"/> through
/// <see cref="Stages"/> shared-memory buffers; its <see cref="WarpsM"/>×<see cref="WarpsN"/> warps each own a
/// <see cref="WarpTileM"/>×<see cref="WarpTileN"/> sub-tile made of 16×8 mma accumulators.
/// Shared memory a stage: X tile [BlockM, BlockK] then W tile [BlockN, BlockK], bf16, rows of BlockK·2
/// bytes cut in 16-byte chunks; chunk c of row r is stored at chunk position c ^ <see cref="Swizzle"/>(r)
/// (<see cref="SharedOffset"/>), so the 8 rows an ldmatrix phase reads fall in 8 different 16-byte bank
/// groups and the 16-byte cp.async writes stay whole.
/// A <see cref="Wgmma"/> tile (Hopper, sm_90a) keeps that shared layout (with 128-byte rows it is exactly the
/// 128-byte swizzle wgmma's descriptors name) but multiplies with <c>wgmma.mma_async</c>: each warpgroup (4 warps)
/// owns 64 rows × BlockN columns and reads both operands from shared memory, so its warps are 16-row "warp
/// tiles" of the full width (the epilogue's fragment layout is mma.sync's).
/// </summary>
public sealed record GemmTile
{
    public GemmTile(int blockM, int blockN, int blockK, int warpsM, int warpsN, int stages)
        : this(blockM, blockN, blockK, warpsM, warpsN, stages, wgmma: false)
    {
    }

    private GemmTile(int blockM, int blockN, int blockK, int warpsM, int warpsN, int stages, bool wgmma)
    {
        Wgmma = wgmma;
        BlockK = blockK is 16 or 32 or 64 ? blockK
            : throw new ArgumentOutOfRangeException(nameof(blockK), blockK, "16, 32 or 64 (rows of 2, 4 or 8 swizzled 16-byte chunks)");
        WarpsM = warpsM is >= 1 and <= 8 ? warpsM : throw new ArgumentOutOfRangeException(nameof(warpsM), warpsM, "1..8");
        WarpsN = warpsN is >= 1 and <= 8 ? warpsN : throw new ArgumentOutOfRangeException(nameof(warpsN), warpsN, "1..8");
        Stages = stages is >= 2 and <= 8 ? stages : throw new ArgumentOutOfRangeException(nameof(stages), stages, "2..8 (cp.async pipeline depth)");
        BlockM = blockM > 0 && blockM % (16 * warpsM) == 0 ? blockM
            : throw new ArgumentOutOfRangeException(nameof(blockM), blockM, $"a multiple of 16·warpsM = {16 * warpsM} (16-row mma fragments)");
        BlockN = blockN > 0 && blockN % (16 * warpsN) == 0 ? blockN
            : throw new ArgumentOutOfRangeException(nameof(blockN), blockN, $"a multiple of 16·warpsN = {16 * warpsN} (ldmatrix.x4 loads two 8-column fragments)");
        // Each thread copies chunks of one column c = tid % ChunksPerRow, rows tid / ChunksPerRow + i·Threads/ChunksPerRow:
        // the rows must split evenly and keep the same swizzle (Threads/8 a multiple of ChunksPerRow).
        if (BlockM * ChunksPerRow % Threads != 0 || BlockN * ChunksPerRow % Threads != 0 || Threads / 8 % ChunksPerRow != 0)
            throw new ArgumentException($"{Name}: {Threads} threads cannot share the {BlockM}+{BlockN} rows of {ChunksPerRow} 16-byte chunks evenly.");
        if (wgmma && (blockK != 64 || blockN > 256 || stages < 3))
            throw new ArgumentException($"{Name}: wgmma tiles step K by 64 (128-byte swizzled rows), are at most 256 columns wide and need 3+ stages (copies run Stages − 2 tiles ahead).");
        if (SharedBytes > 227 * 1024)
            throw new ArgumentException($"{Name}: {SharedBytes} bytes of shared memory exceed the H100's 227 KB a block.");
    }

    /// <summary>A Hopper tiling on <c>wgmma.mma_async</c>: <paramref name="blockM"/> / 64 warpgroups, each 64 rows ×
    /// <paramref name="blockN"/> columns, K in steps of 64.</summary>
    public static GemmTile ForWgmma(int blockM, int blockN, int stages) =>
        blockM is 64 or 128 ? new(blockM, blockN, 64, blockM / 16, 1, stages, wgmma: true)
            : throw new ArgumentOutOfRangeException(nameof(blockM), blockM, "64 or 128 (one or two warpgroups of 64 rows)");

    /// <summary>Multiplies with wgmma (sm_90a) instead of ldmatrix + mma.sync (sm_80 and later).</summary>
    public bool Wgmma { get; }

    public int BlockM { get; }
    public int BlockN { get; }
    public int BlockK { get; }
    public int WarpsM { get; }
    public int WarpsN { get; }
    public int Stages { get; }

    /// <summary>The first version: small tiles, double buffering (kept as a reference and fallback).</summary>
    public static readonly GemmTile Simple = new(64, 64, 32, 2, 2, 2);

    /// <summary>Linear's tiling: 4 warps of 64×64 (each k16 step 8 ldmatrix.x4 feed 32 mma: 128 bytes of shared
    /// memory read an mma, against 192 for 64×32 warps), k-steps of 64, three stages (96 KB). Fastest of
    /// <see cref="Candidates"/> on the H100 (docs/gpu.md, 2026-11-25): 368-397 TFLOP/s for the GEMM kernel at
    /// m = 512 and 2048 on Llama-3-8B's shapes.</summary>
    public static readonly GemmTile Default = new(128, 128, 64, 2, 2, 3);

    /// <summary>Linear's tilings on an H100 (sm_90), widest first: wider tiles read less shared memory a FLOP, but a
    /// grid of fewer blocks than SMs leaves tensor cores idle (docs/gpu.md has the measurements behind the order).</summary>
    public static readonly GemmTile[] HopperTiles = [ForWgmma(128, 256, 4), ForWgmma(128, 128, 6), ForWgmma(64, 128, 4)];

    /// <summary>The tiling for an [m, k]·[n, k]ᵀ product on a GPU of compute capability <paramref name="major"/>.<paramref name="minor"/>
    /// with <paramref name="multiprocessors"/> SMs: on sm_90 the widest of <see cref="HopperTiles"/> whose grid still
    /// gives 90% of the SMs a block (the last one otherwise), elsewhere <see cref="Default"/>.</summary>
    public static GemmTile For(int m, int n, int major, int minor, int multiprocessors)
    {
        if (!HopperTiles[0].RunsOn(major, minor))
            return Default;
        foreach (var tile in HopperTiles)
        {
            var (x, y) = tile.Grid(m, n);
            if ((long)x * y >= 0.9 * multiprocessors)
                return tile;
        }
        return HopperTiles[^1];
    }

    /// <summary>The configurations the bench and the device check compare.</summary>
    public static readonly GemmTile[] Candidates =
    [
        Simple,
        new(128, 128, 32, 2, 4, 4), // 8 warps of 64×32
        new(128, 128, 64, 2, 4, 3),
        new(128, 256, 32, 2, 4, 3), // 8 warps of 64×64
        new(256, 128, 32, 4, 2, 3),
        new(128, 128, 32, 2, 2, 4),
        Default,
        new(128, 256, 64, 2, 4, 3), // 144 KB: half the barriers of 128x256x32
        new(256, 128, 64, 4, 2, 3),
        HopperTiles[0],
        ForWgmma(128, 128, 4),
        HopperTiles[1],
        ForWgmma(64, 256, 4),
        ForWgmma(128, 192, 4),
        ForWgmma(128, 128, 3), // 97 KB: two blocks an SM
        ForWgmma(128, 192, 5),
        ForWgmma(128, 128, 7),
        HopperTiles[2],        // 97 KB: two blocks an SM
    ];

    /// <summary>True where the GPU of compute capability <paramref name="major"/>.<paramref name="minor"/> runs this
    /// tiling: mma.sync from sm_80, wgmma on sm_90 only (sm_90a features do not carry over to later GPUs).</summary>
    public bool RunsOn(int major, int minor) => Wgmma ? major == 9 && minor == 0 : major >= 8;

    public int Threads => 32 * WarpsM * WarpsN;
    public int WarpTileM => BlockM / WarpsM;
    public int WarpTileN => BlockN / WarpsN;
    /// <summary>16-row mma tiles along M in a warp's tile.</summary>
    public int FragmentsM => WarpTileM / 16;
    /// <summary>8-column mma tiles along N in a warp's tile (even: an ldmatrix.x4 loads two).</summary>
    public int FragmentsN => WarpTileN / 8;
    /// <summary>16-byte chunks in a shared-memory row (8 bf16 each).</summary>
    public int ChunksPerRow => BlockK / 8;
    public int RowBytes => BlockK * 2;
    public int StageBytes => (BlockM + BlockN) * RowBytes;
    /// <summary>The stages' ring; a wgmma tile asks 1 KB more so it can start the ring on a 1024-byte boundary
    /// (where the 128-byte swizzle pattern is anchored).</summary>
    public int RingBytes => Stages * StageBytes;
    public int SharedBytes => RingBytes + (Wgmma ? 1024 : 0);
    /// <summary>16-byte cp.async copies a thread issues a stage for the X tile and for the W tile.</summary>
    public int CopiesM => BlockM * ChunksPerRow / Threads;
    public int CopiesN => BlockN * ChunksPerRow / Threads;

    /// <summary>Blocks of the GEMM launch: x over row tiles (fastest, so blocks sharing a W tile run together), y over column tiles.</summary>
    public (int X, int Y) Grid(int m, int n) => ((m + BlockM - 1) / BlockM, (n + BlockN - 1) / BlockN);

    public string Name => Wgmma ? $"wgmma_{BlockM}x{BlockN}x{BlockK}_s{Stages}" : $"{BlockM}x{BlockN}x{BlockK}_w{WarpsM}x{WarpsN}_s{Stages}";

    /// <summary>The XOR applied to the chunk index of row <paramref name="row"/>: the 8/ChunksPerRow rows of a
    /// 128-byte line share a value and the next lines take the others, so 8 consecutive rows read at the same
    /// logical chunk land in 8 different 16-byte bank groups.</summary>
    public int Swizzle(int row) => row / (8 / ChunksPerRow) & (ChunksPerRow - 1);

    /// <summary>Byte offset, within a stage's X or W tile, of element (row, k).</summary>
    public int SharedOffset(int row, int k) => row * RowBytes + ((k / 8 ^ Swizzle(row)) << 4) + k % 8 * 2;
}
