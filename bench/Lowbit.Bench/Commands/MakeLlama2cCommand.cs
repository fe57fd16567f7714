using System.Buffers.Binary;
using System.Diagnostics;
using System.Runtime.InteropServices;

namespace Lowbit.Bench.Commands;

/// <summary>
/// Writes a llama2.c legacy (v0) checkpoint with deterministic random weights, streamed in chunks.
/// Layout (run.c / export.py legacy_export): 7 x int32 header {dim, hidden_dim, n_layers, n_heads, n_kv_heads,
/// vocab_size (positive = classifier tied to the embedding), seq_len}, then F32 tensors in this order:
/// token_embedding_table [vocab, dim]; rms_att_weight [layers, dim]; wq [layers, dim*dim]; wk [layers, kv_dim*dim];
/// wv [layers, kv_dim*dim]; wo [layers, dim*dim]; rms_ffn_weight [layers, dim]; w1 [layers, hidden*dim];
/// w2 [layers, dim*hidden]; w3 [layers, hidden*dim]; rms_final_weight [dim];
/// freq_cis_real [seq_len, head_size/2]; freq_cis_imag [seq_len, head_size/2].
/// </summary>
public static class MakeLlama2cCommand
{
    public static readonly IReadOnlyDictionary<string, bool> Options = new Dictionary<string, bool>
    {
        ["--dim"] = true,
        ["--hidden"] = true,
        ["--layers"] = true,
        ["--heads"] = true,
        ["--kv-heads"] = true,
        ["--vocab"] = true,
        ["--seq-len"] = true,
        ["--seed"] = true,
        ["--threads"] = true,
        ["--output"] = true,
    };

    /// <summary>Matrices are uniform on [-a, a] with a = std * sqrt(3), so their standard deviation is 0.02.</summary>
    public const float WeightStd = 0.02f;

    /// <summary>Floats generated from one PRNG stream; the bytes never depend on thread count or chunking.</summary>
    public const int BlockFloats = 1 << 20;

    private const int BlocksPerChunk = 16; // 64 MiB of floats per write

    public static int Run(Args args)
    {
        var cfg = new Config(
            Dim: args.Int("--dim"), Hidden: args.Int("--hidden"), Layers: args.Int("--layers"),
            Heads: args.Int("--heads"), KvHeads: args.Int("--kv-heads"), Vocab: args.Int("--vocab"),
            SeqLen: args.Int("--seq-len"));
        ulong seed = args.ULong("--seed", 1);
        int threads = args.Int("--threads", Environment.ProcessorCount);
        string output = args.RequiredString("--output");
        cfg.Validate();

        var sw = Stopwatch.StartNew();
        long bytes = Write(cfg, seed, threads, output);
        double s = sw.Elapsed.TotalSeconds;
        Console.WriteLine($"wrote {output}: {bytes:N0} bytes ({bytes / 1e9:F2} GB), {cfg.ParameterCount():N0} weights (tied classifier), seed {seed}, {s:F1} s ({bytes / 1e9 / s:F2} GB/s)");
        return 0;
    }

    public sealed record Config(int Dim, int Hidden, int Layers, int Heads, int KvHeads, int Vocab, int SeqLen)
    {
        public int HeadSize => Dim / Heads;

        public int KvDim => HeadSize * KvHeads;

        public void Validate()
        {
            if (Dim <= 0 || Hidden <= 0 || Layers <= 0 || Heads <= 0 || KvHeads <= 0 || Vocab <= 0 || SeqLen <= 0)
            {
                throw new ArgsException("all dimensions must be positive");
            }

            if (Dim % Heads != 0 || Heads % KvHeads != 0 || HeadSize % 2 != 0)
            {
                throw new ArgsException("need dim % heads == 0, heads % kv-heads == 0 and an even head size");
            }
        }

        /// <summary>The tensors in file order: name, float count, kind.</summary>
        public IEnumerable<(string Name, long Count, Kind Kind)> Tensors()
        {
            long l = Layers, d = Dim, h = Hidden, kv = KvDim;
            yield return ("token_embedding_table", (long)Vocab * d, Kind.Random);
            yield return ("rms_att_weight", l * d, Kind.Ones);
            yield return ("wq", l * d * d, Kind.Random);
            yield return ("wk", l * kv * d, Kind.Random);
            yield return ("wv", l * kv * d, Kind.Random);
            yield return ("wo", l * d * d, Kind.Random);
            yield return ("rms_ffn_weight", l * d, Kind.Ones);
            yield return ("w1", l * h * d, Kind.Random);
            yield return ("w2", l * d * h, Kind.Random);
            yield return ("w3", l * h * d, Kind.Random);
            yield return ("rms_final_weight", d, Kind.Ones);
            yield return ("freq_cis_real", (long)SeqLen * (HeadSize / 2), Kind.FreqCos);
            yield return ("freq_cis_imag", (long)SeqLen * (HeadSize / 2), Kind.FreqSin);
        }

        public long ParameterCount() => Tensors().Where(t => t.Kind is Kind.Random or Kind.Ones).Sum(t => t.Count);
    }

    public enum Kind { Random, Ones, FreqCos, FreqSin }

    public static long Write(Config cfg, ulong seed, int threads, string output)
    {
        if (!BitConverter.IsLittleEndian)
        {
            throw new PlatformNotSupportedException("llama2.c checkpoints are little-endian");
        }

        string full = Path.GetFullPath(output);
        string tmp = Path.Combine(Path.GetDirectoryName(full)!, $".{Path.GetFileName(full)}.{Environment.ProcessId}.tmp");
        var buffer = new float[BlocksPerChunk * BlockFloats];
        var parallel = new ParallelOptions { MaxDegreeOfParallelism = Math.Max(1, threads) };
        try
        {
            using (var fs = new FileStream(tmp, FileMode.CreateNew, FileAccess.Write, FileShare.None, 1 << 20))
            {
                Span<byte> header = stackalloc byte[28];
                int[] fields = [cfg.Dim, cfg.Hidden, cfg.Layers, cfg.Heads, cfg.KvHeads, cfg.Vocab, cfg.SeqLen];
                for (int i = 0; i < fields.Length; i++)
                {
                    BinaryPrimitives.WriteInt32LittleEndian(header[(4 * i)..], fields[i]);
                }

                fs.Write(header);
                int tensorIndex = 0;
                foreach (var (_, count, kind) in cfg.Tensors())
                {
                    for (long start = 0; start < count; start += buffer.Length)
                    {
                        int n = (int)Math.Min(buffer.Length, count - start);
                        Fill(cfg, kind, seed, tensorIndex, start, buffer, n, parallel);
                        fs.Write(MemoryMarshal.AsBytes(buffer.AsSpan(0, n)));
                    }

                    tensorIndex++;
                }

                fs.Flush(flushToDisk: true);
            }

            File.Move(tmp, full, overwrite: true);
            return new FileInfo(full).Length;
        }
        catch
        {
            File.Delete(tmp);
            throw;
        }
    }

    /// <summary>Fills buffer[0..n) with elements [start, start + n) of one tensor; start is a multiple of BlockFloats.</summary>
    private static void Fill(Config cfg, Kind kind, ulong seed, int tensorIndex, long start, float[] buffer, int n, ParallelOptions parallel)
    {
        switch (kind)
        {
            case Kind.Ones:
                buffer.AsSpan(0, n).Fill(1.0f);
                break;
            case Kind.FreqCos:
            case Kind.FreqSin:
                FillFreqCis(cfg, kind == Kind.FreqCos, start, buffer.AsSpan(0, n));
                break;
            default:
                FillRandom(seed, tensorIndex, start, buffer, n, parallel);
                break;
        }
    }

    /// <summary>
    /// Each block of BlockFloats elements has its own SplitMix64 stream, seeded from (seed, tensor, block), so the
    /// blocks can be generated in parallel and the bytes depend only on the seed and the shape.
    /// </summary>
    private static void FillRandom(ulong seed, int tensorIndex, long start, float[] buffer, int n, ParallelOptions parallel)
    {
        long firstBlock = start / BlockFloats;
        int blocks = (n + BlockFloats - 1) / BlockFloats;
        float a = WeightStd * MathF.Sqrt(3.0f);
        Parallel.For(0, blocks, parallel, b =>
        {
            int offset = b * BlockFloats;
            var span = buffer.AsSpan(offset, Math.Min(BlockFloats, n - offset));
            var rng = new SplitMix64(SplitMix64.Mix(SplitMix64.Mix(SplitMix64.Mix(seed) ^ (ulong)tensorIndex) ^ (ulong)(firstBlock + b)));
            int i = 0;
            for (; i + 1 < span.Length; i += 2)
            {
                ulong x = rng.Next();
                span[i] = Uniform((uint)x, a);
                span[i + 1] = Uniform((uint)(x >> 32), a);
            }

            if (i < span.Length)
            {
                span[i] = Uniform((uint)rng.Next(), a);
            }
        });
    }

    /// <summary>Top 24 bits to [0, 1) exactly, then to [-a, a).</summary>
    private static float Uniform(uint bits, float a) => (((bits >> 8) * (1.0f / 16777216.0f) * 2.0f) - 1.0f) * a;

    /// <summary>run.c export (model.py precompute_freqs_cis, theta 10000): angle = t / theta^(2i/head_size).</summary>
    private static void FillFreqCis(Config cfg, bool cos, long start, Span<float> dst)
    {
        int half = cfg.HeadSize / 2;
        for (int k = 0; k < dst.Length; k++)
        {
            long idx = start + k;
            int t = (int)(idx / half), i = (int)(idx % half);
            float freq = 1.0f / MathF.Pow(10000.0f, 2 * i / (float)cfg.HeadSize);
            float angle = t * freq;
            dst[k] = cos ? MathF.Cos(angle) : MathF.Sin(angle);
        }
    }
}
