using System.Buffers.Binary;
using Lowbit.Models.Llama2c;

namespace Lowbit.Tests.Models.Llama2c;

public sealed class Llama2cCheckpointTests : TempDirTests
{
    private static readonly Llama2cConfig Small = new(16, 24, 2, 4, 2, 10, 8, SharedClassifier: true);

    [Fact]
    public void ReadsStories260KHeader()
    {
        using var ckpt = new Llama2cCheckpoint(Llama2cFiles.Stories260K);
        Assert.Equal(new Llama2cConfig(64, 172, 5, 8, 4, 512, 512, SharedClassifier: true), ckpt.Config);
        Assert.Equal(8, ckpt.Config.HeadSize);
        Assert.Equal(32, ckpt.Config.KvDim);
    }

    [Fact]
    public void Stories260KWeightsMatchAnIndependentReadOfTheBytes()
    {
        byte[] raw = File.ReadAllBytes(Llama2cFiles.Stories260K);
        float At(long floatIndex) => BinaryPrimitives.ReadSingleLittleEndian(raw.AsSpan((int)(28 + 4 * floatIndex)));
        // Offsets in floats of each array, worked out by hand from the dims (V=512, D=64, L=5, KV=32, H=172).
        const long rmsAtt = 512 * 64, wq = rmsAtt + 5 * 64, wk = wq + 5 * 64 * 64, wv = wk + 5 * 32 * 64;
        const long wo = wv + 5 * 32 * 64, rmsFfn = wo + 5 * 64 * 64, w1 = rmsFfn + 5 * 64, w2 = w1 + 5 * 172 * 64;
        const long w3 = w2 + 5 * 64 * 172, rmsFinal = w3 + 5 * 172 * 64, freqReal = rmsFinal + 64, freqImag = freqReal + 512 * 4;

        using var ckpt = new Llama2cCheckpoint(Llama2cFiles.Stories260K);
        Assert.Equal(At(5 * 64 + 7), ckpt.Get(Llama2cWeight.TokenEmbedding).Row<float>(5)[7]);
        Assert.Equal(At(rmsAtt + 64 + 3), ckpt.Get(Llama2cWeight.RmsAtt, 1).AsSpan<float>()[3]);
        Assert.Equal(At(wq + 2 * 64 * 64 + 10 * 64 + 20), ckpt.Get(Llama2cWeight.Wq, 2).Row<float>(10)[20]);
        Assert.Equal(At(wk + 3 * 32 * 64 + 31 * 64 + 63), ckpt.Get(Llama2cWeight.Wk, 3).Row<float>(31)[63]);
        Assert.Equal(At(wv + 4 * 32 * 64), ckpt.Get(Llama2cWeight.Wv, 4).Row<float>(0)[0]);
        Assert.Equal(At(wo + 64 * 64 + 5 * 64 + 9), ckpt.Get(Llama2cWeight.Wo, 1).Row<float>(5)[9]);
        Assert.Equal(At(rmsFfn + 2 * 64 + 1), ckpt.Get(Llama2cWeight.RmsFfn).Row<float>(2)[1]);
        Assert.Equal(At(w1 + 171 * 64 + 63), ckpt.Get(Llama2cWeight.W1, 0).Row<float>(171)[63]);
        Assert.Equal(At(w2 + 4 * 64 * 172 + 63 * 172 + 171), ckpt.Get(Llama2cWeight.W2, 4).Row<float>(63)[171]);
        Assert.Equal(At(w3 + 2 * 172 * 64 + 100 * 64 + 33), ckpt.Get(Llama2cWeight.W3, 2).Row<float>(100)[33]);
        Assert.Equal(At(rmsFinal + 63), ckpt.Get(Llama2cWeight.RmsFinal).AsSpan<float>()[63]);
        Assert.Equal(ckpt.Get(Llama2cWeight.TokenEmbedding).Data, ckpt.Get(Llama2cWeight.Wcls).Data);
        Assert.Equal([5, 172, 64], ckpt.Get(Llama2cWeight.W3).Shape);

        // The RoPE tables confirm the layout lines up to the end: cos and sin of pos · 10000^(-2i/8).
        double angle = 3 * Math.Pow(10000, -2.0 / 8);
        Assert.Equal(Math.Cos(angle), At(freqReal + 3 * 4 + 1), 1e-5);
        Assert.Equal(Math.Sin(angle), At(freqImag + 3 * 4 + 1), 1e-5);
        Assert.Equal(Math.Cos(angle), ckpt.Get(Llama2cWeight.FreqCisReal).Row<float>(3)[1], 1e-5);
    }

    [Fact]
    public void ReadsASeparateClassifierAtTheEnd()
    {
        var config = Small with { SharedClassifier = false };
        long floats = Llama2cFiles.FloatCount(config);
        string path = Llama2cFiles.Write(Dir.File("untied.bin"), config, i => i);
        using var ckpt = new Llama2cCheckpoint(path);
        Assert.Equal(config, ckpt.Config);
        var wcls = ckpt.Get(Llama2cWeight.Wcls);
        Assert.Equal([10, 16], wcls.Shape);
        Assert.Equal(floats - 160, wcls.AsSpan<float>()[0]);
        Assert.Equal(floats - 1, wcls.AsSpan<float>()[^1]);
    }

    [Fact]
    public void RejectsFileShorterThanTheHeader()
    {
        string path = Dir.File("tiny.bin");
        File.WriteAllBytes(path, new byte[10]);
        Rejects(path, "10 bytes is shorter than the 28-byte llama2.c header");
    }

    [Theory]
    [InlineData(0, 0, "dim is 0")]
    [InlineData(1, -172, "hidden_dim is -172")]
    [InlineData(2, 0, "n_layers is 0")]
    [InlineData(3, 0, "n_heads is 0")]
    [InlineData(4, -1, "n_kv_heads is -1")]
    [InlineData(5, 0, "vocab_size is 0")]
    [InlineData(6, 0, "seq_len is 0")]
    public void RejectsNonPositiveHeaderFields(int field, int value, string expected)
    {
        int[] header = [64, 172, 5, 8, 4, 512, 512];
        header[field] = value;
        string path = Llama2cFiles.WriteRaw(Dir.File("dims.bin"), header, 0);
        Rejects(path, $"header field {expected}; it must be positive");
    }

    [Fact]
    public void RejectsHeadsThatDoNotDivideDim()
    {
        string path = Llama2cFiles.WriteRaw(Dir.File("heads.bin"), [64, 172, 5, 6, 3, 512, 512], 0);
        Rejects(path, "dim (64) is not divisible by n_heads (6)");
    }

    [Fact]
    public void RejectsKvHeadsThatDoNotDivideHeads()
    {
        string path = Llama2cFiles.WriteRaw(Dir.File("kv.bin"), [64, 172, 5, 8, 3, 512, 512], 0);
        Rejects(path, "n_heads (8) is not divisible by n_kv_heads (3)");
    }

    [Fact]
    public void RejectsTruncatedFileNamingExpectedAndActualSizes()
    {
        string path = Llama2cFiles.Write(Dir.File("cut.bin"), Small, _ => 1f);
        long full = new FileInfo(path).Length;
        using (var stream = new FileStream(path, FileMode.Open))
            stream.SetLength(full - 4);
        Rejects(path, $"expected {full} bytes", $"the file has {full - 4} bytes (truncated)");
    }

    [Fact]
    public void RejectsTrailingBytes()
    {
        string path = Llama2cFiles.Write(Dir.File("long.bin"), Small, _ => 1f);
        long full = new FileInfo(path).Length;
        File.AppendAllText(path, "xyzw");
        Rejects(path, $"expected {full} bytes", "(4 extra)");
    }

    /// <summary>Opening <paramref name="path"/> fails with a message naming the file and each fragment.</summary>
    private static void Rejects(string path, params string[] fragments)
    {
        var e = Assert.Throws<InvalidDataException>(() => new Llama2cCheckpoint(path));
        Assert.Contains(Path.GetFileName(path), e.Message);
        foreach (string fragment in fragments)
            Assert.Contains(fragment, e.Message);
    }
}
