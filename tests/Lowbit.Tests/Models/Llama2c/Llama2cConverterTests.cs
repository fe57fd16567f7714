using Lowbit.Models.HuggingFace;
using Lowbit.Models.Llama2c;
using Lowbit.Tensors;

namespace Lowbit.Tests.Models.Llama2c;

public sealed class Llama2cConverterTests : TempDirTests
{
    private static readonly Llama2cConfig SmallUntied = new(16, 24, 2, 4, 2, 10, 8, SharedClassifier: false);

    private string ConvertStories(string name = "hf")
    {
        string outDir = Dir.File(name);
        using var ckpt = new Llama2cCheckpoint(Llama2cFiles.Stories260K);
        Llama2cConverter.WriteHuggingFace(ckpt, outDir);
        return outDir;
    }

    [Fact]
    public void Stories260KConvertsToAHuggingFaceLlamaDirectory()
    {
        string outDir = ConvertStories();
        Assert.Equal(["config.json", "model.safetensors"], Directory.EnumerateFiles(outDir).Select(Path.GetFileName).Order());
        Assert.Equal(["hf"], Dir.Entries());

        var config = ModelConfigReader.Load(outDir);
        Assert.Equal(("LlamaForCausalLM", 64, 172, 5, 8, 4, 8, 512, 512), (config.Architecture, config.HiddenSize,
            config.IntermediateSize, config.NumLayers, config.NumHeads, config.NumKvHeads, config.HeadDim, config.VocabSize,
            config.MaxPositionEmbeddings));
        Assert.Equal((1e-5f, 10000f, true, DType.F32, 1), (config.RmsNormEps, config.RopeTheta, config.TieWordEmbeddings,
            config.TorchDType, config.BosTokenId));
        Assert.Equal([2], config.EosTokenIds);

        using var hf = new CheckpointTensors(outDir);
        using var ckpt = new Llama2cCheckpoint(Llama2cFiles.Stories260K);
        Assert.Equal(1 + 5 * 9 + 1, hf.Names.Count());
        Assert.False(hf.Contains("lm_head.weight"));
        const string because = "llama2.c header";
        Assert.Equal(Bytes(ckpt.Get(Llama2cWeight.TokenEmbedding)), Bytes(hf.Get("model.embed_tokens.weight", [512, 64], because)));
        Assert.Equal(Bytes(ckpt.Get(Llama2cWeight.RmsFinal)), Bytes(hf.Get("model.norm.weight", [64], because)));
        for (int i = 0; i < 5; i++)
        {
            string p = $"model.layers.{i}.";
            Assert.Equal(Bytes(ckpt.Get(Llama2cWeight.RmsAtt, i)), Bytes(hf.Get(p + "input_layernorm.weight", [64], because)));
            Assert.Equal(Bytes(ckpt.Get(Llama2cWeight.Wv, i)), Bytes(hf.Get(p + "self_attn.v_proj.weight", [32, 64], because)));
            Assert.Equal(Bytes(ckpt.Get(Llama2cWeight.Wo, i)), Bytes(hf.Get(p + "self_attn.o_proj.weight", [64, 64], because)));
            Assert.Equal(Bytes(ckpt.Get(Llama2cWeight.RmsFfn, i)), Bytes(hf.Get(p + "post_attention_layernorm.weight", [64], because)));
            Assert.Equal(Bytes(ckpt.Get(Llama2cWeight.W1, i)), Bytes(hf.Get(p + "mlp.gate_proj.weight", [172, 64], because)));
            Assert.Equal(Bytes(ckpt.Get(Llama2cWeight.W2, i)), Bytes(hf.Get(p + "mlp.down_proj.weight", [64, 172], because)));
            Assert.Equal(Bytes(ckpt.Get(Llama2cWeight.W3, i)), Bytes(hf.Get(p + "mlp.up_proj.weight", [172, 64], because)));

            // q and k are permuted within each head: HF row h·8 + r is llama2.c row h·8 + 2r, row h·8 + 4 + r is h·8 + 2r + 1.
            var q = hf.Get(p + "self_attn.q_proj.weight", [64, 64], because);
            var k = hf.Get(p + "self_attn.k_proj.weight", [32, 64], because);
            Assert.Equal(ckpt.Get(Llama2cWeight.Wq, i).Row<float>(3 * 8 + 2 * 1).ToArray(), q.Row<float>(3 * 8 + 1).ToArray());
            Assert.Equal(ckpt.Get(Llama2cWeight.Wq, i).Row<float>(3 * 8 + 2 * 1 + 1).ToArray(), q.Row<float>(3 * 8 + 4 + 1).ToArray());
            Assert.Equal(ckpt.Get(Llama2cWeight.Wk, i).Row<float>(2 * 8 + 2 * 3 + 1).ToArray(), k.Row<float>(2 * 8 + 4 + 3).ToArray());
        }
    }

    [Fact]
    public void PermuteRotaryRowsMovesInterleavedPairsToHalves()
    {
        float[] source = [0, 1, 2, 3, 4, 5, 6, 7]; // two heads of 4 rows, one column
        var destination = new float[8];
        Llama2cConverter.PermuteRotaryRows(source, heads: 2, headDim: 4, columns: 1, destination);
        Assert.Equal([0, 2, 1, 3, 4, 6, 5, 7], destination);
    }

    /// <summary>The permutation is right exactly when attention is unchanged: q·k with llama2.c's weights
    /// and interleaved RoPE equals q·k with the converted weights and HF's rotate-half RoPE, for every
    /// query head and its key head (GQA), at several positions.</summary>
    [Fact]
    public void AttentionScoresAgreeBetweenInterleavedAndRotateHalfRope()
    {
        string outDir = ConvertStories();
        using var hf = new CheckpointTensors(outDir);
        using var ckpt = new Llama2cCheckpoint(Llama2cFiles.Stories260K);
        var c = ckpt.Config;
        var random = new Random(1234);
        double[] x = [.. Enumerable.Range(0, c.Dim).Select(_ => random.NextDouble() * 2 - 1)];
        double[] y = [.. Enumerable.Range(0, c.Dim).Select(_ => random.NextDouble() * 2 - 1)];

        foreach (int layer in new[] { 0, 4 })
        {
            foreach (var (qPos, kPos) in new[] { (0, 0), (7, 3), (100, 99), (511, 17) })
            {
                var qOld = MatVec(ckpt.Get(Llama2cWeight.Wq, layer), x);
                var kOld = MatVec(ckpt.Get(Llama2cWeight.Wk, layer), y);
                RotaryConventions.Interleaved(qOld, c.HeadSize, qPos);
                RotaryConventions.Interleaved(kOld, c.HeadSize, kPos);
                var qNew = MatVec(hf.Get($"model.layers.{layer}.self_attn.q_proj.weight"), x);
                var kNew = MatVec(hf.Get($"model.layers.{layer}.self_attn.k_proj.weight"), y);
                RotaryConventions.RotateHalf(qNew, c.HeadSize, qPos);
                RotaryConventions.RotateHalf(kNew, c.HeadSize, kPos);

                for (int h = 0; h < c.NumHeads; h++)
                {
                    int kvHead = h / (c.NumHeads / c.NumKvHeads);
                    double expected = Dot(qOld, h, kOld, kvHead, c.HeadSize);
                    double actual = Dot(qNew, h, kNew, kvHead, c.HeadSize);
                    Assert.True(Math.Abs(expected - actual) <= 1e-9 * (1 + Math.Abs(expected)),
                        $"layer {layer} head {h} at positions ({qPos}, {kPos}): {expected} vs {actual}");
                }
            }
        }
        // The check has teeth: without the permutation the scores differ.
        var qRaw = MatVec(ckpt.Get(Llama2cWeight.Wq, 0), x);
        var kRaw = MatVec(ckpt.Get(Llama2cWeight.Wk, 0), y);
        var qRef = (double[])qRaw.Clone();
        var kRef = (double[])kRaw.Clone();
        RotaryConventions.Interleaved(qRef, c.HeadSize, 7);
        RotaryConventions.Interleaved(kRef, c.HeadSize, 3);
        RotaryConventions.RotateHalf(qRaw, c.HeadSize, 7);
        RotaryConventions.RotateHalf(kRaw, c.HeadSize, 3);
        Assert.NotEqual(Dot(qRef, 0, kRef, 0, c.HeadSize), Dot(qRaw, 0, kRaw, 0, c.HeadSize), 1e-6);
    }

    [Fact]
    public void UntiedCheckpointGetsAnLmHead()
    {
        string bin = Llama2cFiles.Write(Dir.File("untied.bin"), SmallUntied, i => (i % 97) * 0.01f - 0.4f);
        string outDir = Dir.File("hf-untied");
        using var ckpt = new Llama2cCheckpoint(bin);
        Llama2cConverter.WriteHuggingFace(ckpt, outDir);

        var config = ModelConfigReader.Load(outDir);
        Assert.False(config.TieWordEmbeddings);
        Assert.Equal((16, 24, 2, 4, 2, 10, 8), (config.HiddenSize, config.IntermediateSize, config.NumLayers,
            config.NumHeads, config.NumKvHeads, config.VocabSize, config.MaxPositionEmbeddings));
        using var hf = new CheckpointTensors(outDir);
        Assert.Equal(1 + 2 * 9 + 2, hf.Names.Count());
        Assert.Equal(Bytes(ckpt.Get(Llama2cWeight.Wcls)), Bytes(hf.Get("lm_head.weight", [10, 16], "llama2.c header")));
        Assert.NotEqual(Bytes(ckpt.Get(Llama2cWeight.TokenEmbedding)), Bytes(hf.Get("lm_head.weight")));
    }

    [Fact]
    public void RefusesANonEmptyOutputDirectoryUnlessOverwrite()
    {
        string outDir = Dir.File("taken");
        Directory.CreateDirectory(outDir);
        File.WriteAllText(Path.Combine(outDir, "old.txt"), "old");
        using var ckpt = new Llama2cCheckpoint(Llama2cFiles.Stories260K);

        var e = Assert.Throws<IOException>(() => Llama2cConverter.WriteHuggingFace(ckpt, outDir));
        Assert.Contains($"{outDir} exists and is not empty", e.Message);
        Assert.Equal(["taken"], Dir.Entries());

        Llama2cConverter.WriteHuggingFace(ckpt, outDir, overwrite: true);
        Assert.Equal(["config.json", "model.safetensors"], Directory.EnumerateFiles(outDir).Select(Path.GetFileName).Order());
        Assert.Equal(["taken"], Dir.Entries());
    }

    [Fact]
    public void WritesIntoAnExistingEmptyDirectory()
    {
        string outDir = Dir.File("empty");
        Directory.CreateDirectory(outDir);
        using var ckpt = new Llama2cCheckpoint(Llama2cFiles.Stories260K);
        Llama2cConverter.WriteHuggingFace(ckpt, outDir);
        Assert.True(File.Exists(Path.Combine(outDir, "model.safetensors")));
    }

    [Fact]
    public void CallerAddsFilesBeforeTheRename()
    {
        string outDir = Dir.File("with-tokenizer");
        using var ckpt = new Llama2cCheckpoint(Llama2cFiles.Stories260K);
        Llama2cConverter.WriteHuggingFace(ckpt, outDir, addFiles: temp =>
        {
            Assert.False(Directory.Exists(outDir));
            Assert.True(File.Exists(Path.Combine(temp, "model.safetensors")));
            File.WriteAllText(Path.Combine(temp, "tokenizer.model"), "sentencepiece");
        });
        Assert.Equal("sentencepiece", File.ReadAllText(Path.Combine(outDir, "tokenizer.model")));
    }

    [Fact]
    public void FailureLeavesNoOutputAndNoTemporaryDirectory()
    {
        string outDir = Dir.File("failed");
        using var ckpt = new Llama2cCheckpoint(Llama2cFiles.Stories260K);
        Assert.Throws<InvalidDataException>(() => Llama2cConverter.WriteHuggingFace(ckpt, outDir,
            addFiles: _ => throw new InvalidDataException("tokenizer.bin is corrupt")));
        Assert.Empty(Dir.Entries());
    }

    private static byte[] Bytes(Tensor t) => t.AsBytes().ToArray();

    private static double[] MatVec(Tensor w, double[] x)
    {
        var y = new double[w.Rows];
        for (int r = 0; r < y.Length; r++)
        {
            var row = w.Row<float>(r);
            for (int c = 0; c < row.Length; c++)
                y[r] += row[c] * x[c];
        }
        return y;
    }

    private static double Dot(double[] q, int qHead, double[] k, int kHead, int headSize)
    {
        double sum = 0;
        for (int i = 0; i < headSize; i++)
            sum += q[qHead * headSize + i] * k[kHead * headSize + i];
        return sum;
    }
}
