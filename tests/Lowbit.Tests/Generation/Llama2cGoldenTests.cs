using System.Text.Json;
using Lowbit.Generation;
using Lowbit.Models;
using Lowbit.Models.IO;
using Lowbit.Models.Llama2c;
using Lowbit.Models.Tokenization;
using Lowbit.Tests.Models;

namespace Lowbit.Tests.Generation;

/// <summary>
/// The golden end-to-end test: stories260K imported from llama2.c, tokenized, run and decoded greedily
/// must give llama2.c run.c's own tokens and text (tests/fixtures/reference/stories260K-greedy.json).
/// </summary>
public sealed class Llama2cGoldenTests : IDisposable
{
    private readonly TempDir _dir = new();
    private readonly string _model;

    public Llama2cGoldenTests()
    {
        _model = _dir.File("stories260K");
        Import(_model);
    }

    private sealed record Case(string prompt, int[] prompt_token_ids, int[] generated_token_ids, string text);

    private sealed record Golden(Case[] cases);

    /// <summary>Both prompts, with the weights mapped and copied into huge pages (the CPU default on Linux).</summary>
    public static TheoryData<int, WeightMemory> Cases => new()
    {
        { 0, WeightMemory.Mapped }, { 1, WeightMemory.Mapped }, { 0, WeightMemory.HugePages }, { 1, WeightMemory.HugePages },
    };

    private static Case Load(int index) =>
        JsonSerializer.Deserialize<Golden>(File.ReadAllText(Fixtures.Get("reference", "stories260K-greedy.json")))!.cases[index];

    /// <summary>What `lowbit import llama2c` does, through the same library calls.</summary>
    private static void Import(string outDir)
    {
        using var checkpoint = new Llama2cCheckpoint(Fixtures.Get("llama2c", "stories260K.bin"));
        byte[] sp = Llama2cTokenizerConverter.ToSentencePieceModel(Fixtures.Get("tokenizers", "tok512.bin"), checkpoint.Config.VocabSize);
        Llama2cConverter.WriteHuggingFace(checkpoint, outDir, addFiles: temp =>
            File.WriteAllBytes(Path.Combine(temp, TextTokenizer.SentencePieceFileName), sp));
    }

    [Theory]
    [MemberData(nameof(Cases))]
    public void Greedy_tokens_equal_llama2c_run_c(int index, WeightMemory memory)
    {
        var golden = Load(index);
        using var model = LanguageModel.Load(_model, new ModelLoadOptions { Threads = 2, WeightMemory = memory });
        int[] prompt = model.Tokenizer.Encode(golden.prompt, addBos: true);
        Assert.Equal(golden.prompt_token_ids, prompt);

        using var generator = new Generator(model, prefillChunk: 3);
        var options = new GenerationOptions { MaxTokens = golden.generated_token_ids.Length, StopAtEos = false };
        int[] generated = [.. generator.GenerateTokens(prompt, options)];
        int firstDiff = Enumerable.Range(0, Math.Min(generated.Length, golden.generated_token_ids.Length))
            .FirstOrDefault(i => generated[i] != golden.generated_token_ids[i], -1);
        Assert.True(firstDiff < 0 && generated.Length == golden.generated_token_ids.Length,
            $"first divergence at generated token {firstDiff}: run.c {golden.generated_token_ids.ElementAtOrDefault(firstDiff)}, Lowbit {generated.ElementAtOrDefault(firstDiff)}");
    }

    [Theory]
    [InlineData(0)]
    [InlineData(1)]
    public async Task Streamed_text_equals_run_c_output(int index)
    {
        var golden = Load(index);
        using var model = LanguageModel.Load(_model, new ModelLoadOptions { Threads = 1 });
        using var generator = new Generator(model);
        var options = new GenerationOptions { MaxTokens = golden.generated_token_ids.Length, StopAtEos = false };
        var text = new System.Text.StringBuilder(golden.prompt);
        await foreach (string piece in generator.GenerateAsync(golden.prompt, options, TestContext.Current.CancellationToken))
            text.Append(piece);
        Assert.Equal(golden.text, text.ToString());
    }

    [Fact]
    public void Bundled_model_is_what_the_importer_makes()
    {
        string bundled = Path.Combine(AppContext.BaseDirectory, "bundled-model");
        foreach (string file in new[] { "config.json", "model.safetensors", "tokenizer.model" })
            Assert.True(File.ReadAllBytes(Path.Combine(bundled, file)).AsSpan().SequenceEqual(File.ReadAllBytes(Path.Combine(_model, file))), file);
    }

    public void Dispose() => _dir.Dispose();
}
