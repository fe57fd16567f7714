using System.Text;
using Lowbit.Models.Tokenization;
using Microsoft.ML.Tokenizers;

namespace Lowbit.Tests.Models.Tokenization;

public class TextTokenizerTests
{
    [Fact]
    public void Load_SentencePieceDirectory_GivesLlama2Ids()
    {
        TextTokenizer tokenizer = TokenizerFixtures.Llama2;
        Assert.Equal([1, 9038, 2501, 263, 931], tokenizer.Encode("Once upon a time", addBos: true));
        Assert.Equal([9038, 2501, 263, 931], tokenizer.Encode("Once upon a time", addBos: false));
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal([2], tokenizer.EosIds);
        Assert.Equal(32000, tokenizer.VocabSize);
        Assert.True(tokenizer.AddBosToken);
        Assert.EndsWith(TextTokenizer.SentencePieceFileName, tokenizer.SourcePath);
    }

    [Fact]
    public void Encode_EmptyText_IsJustBos()
    {
        Assert.Equal([1], TokenizerFixtures.Llama2.Encode("", addBos: true));
        Assert.Empty(TokenizerFixtures.Llama2.Encode("", addBos: false));
    }

    [Fact]
    public void Load_EmptyDirectory_NamesDirectoryAndBothFiles()
    {
        string dir = TokenizerFixtures.ModelDir();
        var e = Assert.Throws<FileNotFoundException>(() => TextTokenizer.Load(dir));
        Assert.Contains(dir, e.Message);
        Assert.Contains("tokenizer.model", e.Message);
        Assert.Contains("tokenizer.json", e.Message);
    }

    [Theory]
    [InlineData("tokenizer.model")]
    [InlineData("tokenizer.json")]
    public void Load_CorruptFile_IsInvalidDataNamingIt(string name)
    {
        string dir = TokenizerFixtures.ModelDir((name, Encoding.UTF8.GetBytes("{ this is not a tokenizer")));
        var e = Assert.Throws<InvalidDataException>(() => TextTokenizer.Load(dir));
        Assert.Contains(Path.Combine(dir, name), e.Message);
        Assert.NotNull(e.InnerException);
    }

    [Fact]
    public void Load_ReadsTokenizerConfig()
    {
        const string config = """{"add_bos_token": false, "bos_token": {"content": "<s>", "lstrip": false}, "eos_token": "<0x0A>"}""";
        string dir = TokenizerFixtures.ModelDir(
            ("tokenizer.model", File.ReadAllBytes(TokenizerFixtures.Llama2Model)),
            ("tokenizer_config.json", Encoding.UTF8.GetBytes(config)));
        TextTokenizer tokenizer = TextTokenizer.Load(dir);
        Assert.False(tokenizer.AddBosToken);
        Assert.Equal(1, tokenizer.BosId);
        Assert.Equal([13], tokenizer.EosIds);
    }

    [Fact]
    public void Load_ConfigTokenNotInVocabulary_IsInvalidData()
    {
        string dir = TokenizerFixtures.ModelDir(
            ("tokenizer.model", File.ReadAllBytes(TokenizerFixtures.Llama2Model)),
            ("tokenizer_config.json", Encoding.UTF8.GetBytes("""{"eos_token": "<|nope|>"}""")));
        var e = Assert.Throws<InvalidDataException>(() => TextTokenizer.Load(dir));
        Assert.Contains("<|nope|>", e.Message);
        Assert.Contains("tokenizer_config.json", e.Message);
    }

    [Fact]
    public void Decode_OfEncode_GivesTheTextBack()
    {
        foreach (TextTokenizer tokenizer in (TextTokenizer[])[TokenizerFixtures.Llama2, TokenizerFixtures.Tok512])
            foreach (string text in TokenizerFixtures.HardCases.Concat(TokenizerFixtures.TinyStoriesLines(300)))
                Assert.Equal(text, tokenizer.Decode(tokenizer.Encode(text, addBos: true)));
    }

    [Fact]
    public void Decode_AgreesWithMicrosoftMLTokenizers()
    {
        using var stream = File.OpenRead(TokenizerFixtures.Llama2Model);
        var reference = LlamaTokenizer.Create(stream, addBeginOfSentence: true, addEndOfSentence: false);
        foreach (string text in TokenizerFixtures.TinyStoriesLines(300))
        {
            int[] ids = TokenizerFixtures.Llama2.Encode(text, addBos: true);
            Assert.Equal(reference.Decode(ids), TokenizerFixtures.Llama2.Decode(ids));
        }
    }

    [Fact]
    public void Decode_SkipsSpecialTokensAndDropsOnlyTheFirstDummySpace()
    {
        TextTokenizer tokenizer = TokenizerFixtures.Llama2;
        // 450 "▁The", 29871 "▁", 13 <0x0A>: the first piece's space goes, later ones stay.
        Assert.Equal("The The", tokenizer.Decode([1, 450, 450, 2]));
        Assert.Equal(" The", tokenizer.Decode([1, 29871, 450]));
        Assert.Equal("\n The", tokenizer.Decode([13, 450]));
        Assert.Equal("", tokenizer.Decode([0, 1, 2]));
    }

    [Fact]
    public void Decode_IdOutsideVocabulary_Throws()
    {
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenizerFixtures.Tok512.Decode([1, 512]));
        Assert.Throws<ArgumentOutOfRangeException>(() => TokenizerFixtures.Tok512.Decode([-1]));
    }

    [Fact]
    public void Encode_WithoutBosToken_Throws()
    {
        TextTokenizer tokenizer = TinyByteLevelBpe.Load(withBos: false);
        Assert.Null(tokenizer.BosId);
        Assert.False(tokenizer.AddBosToken);
        Assert.Throws<InvalidOperationException>(() => tokenizer.Encode("a", addBos: true));
    }
}
